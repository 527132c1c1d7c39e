"""Questions asked of runs: tuning, the leakage audit, train against test, ablations, bake-offs,
learning and validation curves."""
