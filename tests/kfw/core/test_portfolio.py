"""The portfolio: greedy over a suite's CV errors, and each data set's choice made without it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from kfw.core.portfolio import CANDIDATES, PORTFOLIO, SIZE, choose, leave_one_out, member
from kfw.errors import ConfigError

ERRORS = {
    "a": {"lgbm": 0.10, "xgb": 0.12, "catboost": 0.11, "linear": 0.30},
    "b": {"lgbm": 0.50, "xgb": 0.40, "catboost": 0.45, "linear": 0.60},
    "c": {"lgbm": 0.20, "xgb": 0.25, "catboost": 0.19, "linear": 0.18},
}


class Sealed(Mapping):
    """The suite's results with one data set sealed: reading its results fails the test."""

    def __init__(self, errors: dict, sealed: str) -> None:
        self.errors, self.sealed = errors, sealed

    def __getitem__(self, key: str):
        if key == self.sealed:
            raise AssertionError(f"the held-out data set {key!r} was read")
        return self.errors[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.errors)

    def __len__(self) -> int:
        return len(self.errors)

    def items(self):  # the default would read every value, the sealed one included
        raise AssertionError("items() reads the held-out data set")

    def values(self):
        raise AssertionError("values() reads the held-out data set")


def test_greedy_adds_what_lowers_the_suites_error_most_and_stops_when_nothing_does():
    # normalised: a: lgbm 0, cat .05, xgb .1, linear 1; b: xgb 0, cat .25, lgbm .5, linear 1;
    # c: linear 0, cat .14, lgbm .29, xgb 1 -> catboost first (mean .15), then each data
    # set's own best, and nothing after that
    assert choose(ERRORS, size=10) == ["catboost", "xgb", "linear", "lgbm"]
    assert choose(ERRORS, size=2) == ["catboost", "xgb"]


@pytest.mark.parametrize("held_out", sorted(ERRORS))
def test_leave_one_out_never_reads_the_held_out_data_set(held_out):
    sealed = Sealed(ERRORS, held_out)
    chosen = choose(sealed, size=3, exclude=held_out)
    others = {k: v for k, v in ERRORS.items() if k != held_out}
    assert chosen == choose(others, size=3)  # the same as if it had never been in the suite


def test_each_data_sets_portfolio_changes_only_with_the_others():
    loo = leave_one_out(ERRORS, size=2)
    assert loo["a"] == choose({"b": ERRORS["b"], "c": ERRORS["c"]}, size=2)
    moved = dict(ERRORS, a={"lgbm": 0.9, "xgb": 0.1, "catboost": 0.5, "linear": 0.2})
    assert leave_one_out(moved, size=2)["a"] == loo["a"]  # its own results cannot move it


def test_a_configuration_missing_on_a_data_set_counts_as_its_worst():
    errors = {"a": {"lgbm": 0.1, "knn": 0.2}, "b": {"lgbm": 0.5, "xgb": 0.3}}
    # lgbm: 0 on a, 1 on b; xgb: 1 on a (missing), 0 on b; knn: 1 on both. lgbm and xgb tie
    # and lgbm is listed first; then xgb brings b to 0 and knn adds nothing
    assert choose(errors, size=3) == ["lgbm", "xgb"]


def test_the_shipped_portfolio_is_made_of_candidates_and_maps_per_task():
    assert set(PORTFOLIO) <= set(CANDIDATES) and len(PORTFOLIO) <= SIZE
    assert member("linear", "regression")[0] == "ridge"
    assert member("linear", "binary")[0] == "logreg"
    with pytest.raises(ConfigError, match="no portfolio candidate"):
        member("gbm-9000", "binary")
    with pytest.raises(ConfigError, match="at least one other"):
        choose({"a": ERRORS["a"]}, exclude="a")
