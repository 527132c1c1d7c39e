"""Numerical gradient checks: central differences in float64 and CS231n's relative error.

Central differences at step ``H`` carry an absolute error of about ``eps |f| / H`` (round-off)
plus ``H^2 |f'''| / 6`` (truncation): around 1e-11 to 1e-10 here. CS231n's relative error is
taken entry by entry, so an entry can only show a relative error under 1e-7 when its gradient
is well above that noise. ``assert_well_conditioned`` states this as a precondition of a
check (entries of at least ``MIN_ENTRY``, or exactly zero: a ReLU that is off, a dropped unit),
so a failing check points at the backward pass and not at an ill-posed comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

H = 1e-5  # central-difference step
GRAD_TOL = 1e-7  # relative error of analytic vs numerical gradients
MIN_ENTRY = 1e-3  # smallest nonzero |gradient| entry a check at GRAD_TOL can resolve


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """CS231n's relative error, the worst entry of ``|a - b| / max(1e-8, |a| + |b|)``."""
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def numerical_gradient(f: Callable[[], float], x: np.ndarray, h: float = H) -> np.ndarray:
    """Central differences ``(f(x + h e_i) - f(x - h e_i)) / 2h``; x is perturbed in place."""
    grad = np.zeros_like(x)
    for ix in np.ndindex(x.shape):
        old = x[ix]
        x[ix] = old + h
        plus = f()
        x[ix] = old - h
        minus = f()
        x[ix] = old
        grad[ix] = (plus - minus) / (2 * h)
    return grad


def is_well_conditioned(grads: Sequence[np.ndarray]) -> bool:
    """Whether every entry is exactly zero or at least ``MIN_ENTRY`` in magnitude."""
    return all(np.all((g == 0) | (np.abs(g) >= MIN_ENTRY)) for g in grads)


def check_layer(forward, backward, inputs: list[np.ndarray], seed: int = 0) -> list[float]:
    """Relative errors of ``backward(dout, cache)`` against ``d sum(forward(*inputs) * dout)``.

    The upstream gradient ``dout`` is drawn from ``seed`` (redrawn, up to 50 times, until
    the analytic gradients are well conditioned); trailing inputs without a gradient are
    constants. Returns one relative error per input with a gradient.
    """
    out, cache = forward(*inputs)
    rng = np.random.default_rng(seed)
    for _ in range(50):
        dout = rng.standard_normal(out.shape)
        analytic = backward(dout, cache)
        analytic = analytic if isinstance(analytic, tuple) else (analytic,)
        if is_well_conditioned(analytic):
            break
    else:
        raise AssertionError("no upstream gradient gave entries the check can resolve")

    def f():
        return float(np.sum(forward(*inputs)[0] * dout))

    return [
        rel_error(grad, numerical_gradient(f, x)) for x, grad in zip(inputs, analytic, strict=False)
    ]
