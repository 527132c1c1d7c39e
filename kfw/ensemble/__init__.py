"""Runs combined on the folds they share: blends, hill climbing, level 2; the roster's ensemble."""
