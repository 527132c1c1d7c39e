"""Reading a learning or validation curve: high bias, high variance, or neither.

The verdict (at the largest size of a learning curve, or at the best value of a validation
curve's parameter) reads the numbers with one rule. Scores are compared on the scale from
chance (each fold predicting its training part's mean or class prior,
:func:`kfw.study.audit.chance_score`) to a perfect score; ``gap`` is how much better the
training score is than the validation score, and the noise is the validation score's
standard deviation over folds:

- **high variance** when ``gap > max(2 * sd, 5% of |perfect - chance|)``: the model fits its
  training rows much better than new ones. If the validation score still improves from the
  second-largest to the largest size (the mean over folds of the paired improvement is
  positive and larger than its standard error), **more data would help**; otherwise
  regularise or simplify.
- **high bias** when the gap is within that margin and the training score itself covers less
  than 90% of the way from chance to perfect: the model cannot fit even the rows it sees, so
  more data will not help; more capacity or better features might. A target this noisy
  looks the same; a curve cannot tell the two apart, and the verdict says so.
- otherwise **a good fit**: training and validation agree near a perfect score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from kfw.core.metrics import Metric

GAP_SIGMAS = 2.0  # a gap beyond this many fold standard deviations is not noise
GAP_FLOOR = 0.05  # ... nor one under 5% of the way from chance to perfect
GOOD = 0.9  # a training score this far from chance to perfect is a good fit, not bias


@dataclass
class Point:
    """One size (or parameter value): the scores of every fold."""

    x: Any  # the size, a fraction of each training part, or the parameter's value
    n_train: float  # rows fitted, mean over folds
    train: list[float]
    valid: list[float]
    reading: str = ""

    @staticmethod
    def _sd(values: list[float]) -> float:
        return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0

    @property
    def train_mean(self) -> float:
        return float(np.mean(self.train))

    @property
    def valid_mean(self) -> float:
        return float(np.mean(self.valid))

    @property
    def train_std(self) -> float:
        return self._sd(self.train)

    @property
    def valid_std(self) -> float:
        return self._sd(self.valid)


@dataclass(frozen=True)
class Scale:
    """Where scores lie: chance, perfect and the metric's direction."""

    metric: Metric
    chance: float
    perfect: float

    @property
    def span(self) -> float:
        return abs(self.perfect - self.chance)

    def skill(self, score: float) -> float:
        """Fraction of the way from chance to perfect."""
        return 0.0 if self.span == 0 else (score - self.chance) / (self.perfect - self.chance)

    def margin(self, point: Point) -> float:
        """The largest train-validation gap that is still noise (metric units)."""
        return max(GAP_SIGMAS * point.valid_std, GAP_FLOOR * self.span)

    def gap(self, point: Point) -> float:
        """How much better training scores than validation (metric units; >0: train better)."""
        return self.metric.sign() * (point.train_mean - point.valid_mean)


def reading(point: Point, scale: Scale) -> str:
    """``high variance``, ``high bias`` or ``good fit`` by the rule of the module docstring."""
    if scale.gap(point) > scale.margin(point):
        return "high variance"
    return "high bias" if scale.skill(point.train_mean) < GOOD else "good fit"


def improvement(before: Point, after: Point, metric: Metric) -> tuple[float, float]:
    """Mean over folds of the paired validation improvement, and its standard error."""
    d = metric.sign() * (np.array(after.valid) - np.array(before.valid))
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("inf")
    return float(d.mean()), se


def _num(x: float) -> str:
    return f"{x:.4f}"


def verdict(points: list[Point], scale: Scale, param: str | None = None) -> str:
    """The reading in words: of the largest size, or of the best value of ``param``."""
    m = scale.metric
    if param is None:
        point = points[-1]
        where = f"at size {point.x:g}"
    else:
        point = points[0]
        for p in points[1:]:
            if m.is_better(p.valid_mean, point.valid_mean):
                point = p
        where = f"at {param}={point.x!r}, the best validation score"
    gap, margin = scale.gap(point), scale.margin(point)
    skill = scale.skill(point.train_mean)
    numbers = (
        f"training {m.name} {_num(point.train_mean)}, validation {_num(point.valid_mean)} "
        f"± {_num(point.valid_std)}; gap {_num(gap)} against a noise margin of {_num(margin)}"
    )
    data = ""
    if param is None:
        gain, se = improvement(points[-2], points[-1], m)
        still = gain > 0 and gain > se
        step = f"from size {points[-2].x:g} to {points[-1].x:g}"
        data = (
            f"validation still improves {step} ({gain:+.4f} ± {se:.4f} per fold)"
            if still
            else f"validation has stopped improving {step} ({gain:+.4f} ± {se:.4f} per fold)"
        )
    kind = reading(point, scale)
    if kind == "high variance":
        if param is None and still:
            head = "high variance, more data would help"
            tail = f"{data}"
        elif param is None:
            head = "high variance"
            tail = f"{data}: regularise or simplify rather than add data"
        else:
            head = "high variance"
            tail = (
                f"already the best value of {param}, the gap left is variance: more data or "
                "another regulariser might narrow it (a learning curve would tell)"
            )
        return f"{head} {where}: {numbers}; {tail}"
    if kind == "high bias":
        tail = (
            f"training reaches only {skill:.0%} of the way from chance to perfect: more data "
            "will not help much; more capacity or better features might (a target this noisy "
            "looks the same)"
        )
        if param is None:
            tail += f"; {data}"
        return f"high bias {where}: {numbers}; {tail}"
    tail = f"training reaches {skill:.0%} of the way from chance to perfect"
    if param is None:
        tail += f"; {data}"
    return f"neither high bias nor high variance {where}: {numbers}; {tail}"
