"""Oracle tests: the scratch autograd against PyTorch's, and against finite differences.

Hypothesis builds random expression graphs over a pool of broadcast-compatible nodes, each
op reading earlier nodes (so sub-graphs are shared and a node collects several gradient
contributions); the same graph is built in torch, float64, and the forward values and all
leaf gradients are compared. log, pow and the divisors only see positive-safe inputs
(``x * x + 1``) and exp sees ``tanh(x)``, so the values stay O(1) and the tolerance can be
absolute.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratch_models.autograd import Tensor, Value, cross_entropy

torch = pytest.importorskip("torch")
F = torch.nn.functional

GRAD_TOL = 1e-10  # rtol and atol vs torch, float64; measured max difference ~1e-15
FD_TOL = 1e-7  # vs central differences with step 1e-6 (error O(h^2) + O(eps / h))
FD_STEP = 1e-6

# shapes that broadcast together to (3, 4)
LEAF_SHAPES = [(3, 4), (4,), (3, 1), (1, 4), (), (1, 1)]


def _positive(x):
    return x * x + 1.0


# each op takes two pool nodes and the library's gelu; all use only methods shared by
# Tensor and torch.Tensor (torch accepts numpy's axis / keepdims spelling)
OPS = {
    "add": lambda a, b, gelu: a + b,
    "sub": lambda a, b, gelu: a - b,
    "mul": lambda a, b, gelu: a * b,
    "div": lambda a, b, gelu: a / _positive(b),
    "neg": lambda a, b, gelu: -a,
    "radd": lambda a, b, gelu: 0.5 + a,
    "rsub": lambda a, b, gelu: 1.0 - a,
    "rmul": lambda a, b, gelu: 2.5 * a,
    "rdiv": lambda a, b, gelu: 1.0 / _positive(a),
    "scalar-div": lambda a, b, gelu: a / 3.0,
    "square": lambda a, b, gelu: a**2,
    "cube": lambda a, b, gelu: a**3,
    "sqrt": lambda a, b, gelu: _positive(a) ** 0.5,
    "pow-neg": lambda a, b, gelu: _positive(a) ** -1.5,
    "exp": lambda a, b, gelu: a.tanh().exp(),
    "log": lambda a, b, gelu: _positive(a).log(),
    "log-exp": lambda a, b, gelu: a.tanh().exp().log(),
    "tanh": lambda a, b, gelu: a.tanh(),
    "sigmoid": lambda a, b, gelu: a.sigmoid(),
    "relu": lambda a, b, gelu: a.relu(),
    "gelu": lambda a, b, gelu: gelu(a),
    "sum-last": lambda a, b, gelu: a.sum(axis=-1, keepdims=True) if a.ndim else a,
    "mean-first": lambda a, b, gelu: a.mean(axis=0, keepdims=a.ndim == 2) if a.ndim else a,
    "mean-all": lambda a, b, gelu: a.mean(),
    "sum-all": lambda a, b, gelu: a.sum(),
}


@st.composite
def graphs(draw):
    """(leaf shapes, seed for the leaf values, ops as (name, operand index, operand index))."""
    shapes = draw(st.lists(st.sampled_from(LEAF_SHAPES), min_size=1, max_size=4))
    seed = draw(st.integers(0, 2**32 - 1))
    index = st.integers(0, 1000)
    ops = draw(
        st.lists(st.tuples(st.sampled_from(sorted(OPS)), index, index), min_size=1, max_size=14)
    )
    return shapes, seed, ops


def _build(ops, leaves, gelu):
    """Apply ops over a growing pool of nodes; the output sums the last three, weighted."""
    pool = list(leaves)
    for name, i, j in ops:
        pool.append(OPS[name](pool[i % len(pool)], pool[j % len(pool)], gelu))
    return pool


def _leaves(shapes, seed):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-2, 2, size=shape) for shape in shapes]


def _ours_vs_torch(arrays, build):
    """Forward values and leaf gradients of build(*leaves) in both libraries."""
    ours = [Tensor(a) for a in arrays]
    theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out, ref = build(*ours), build(*theirs)
    out.backward()
    ref.backward()
    grads = [
        (t.grad, r.grad.numpy() if r.grad is not None else np.zeros_like(t.data))
        for t, r in zip(ours, theirs, strict=True)
    ]
    return (out.data, ref.detach().numpy()), grads


def _assert_matches_torch(arrays, build):
    (value, ref_value), grads = _ours_vs_torch(arrays, build)
    np.testing.assert_allclose(value, ref_value, rtol=GRAD_TOL, atol=GRAD_TOL)
    for grad, ref_grad in grads:
        assert grad.shape == ref_grad.shape
        np.testing.assert_allclose(grad, ref_grad, rtol=GRAD_TOL, atol=GRAD_TOL)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(graphs())
def test_random_graphs_with_shared_nodes_and_broadcasting_match_torch(graph):
    shapes, seed, ops = graph
    arrays = _leaves(shapes, seed)
    weights = np.random.default_rng(seed + 1).normal(size=(3, 3, 4))

    def build(*leaves):
        ours = isinstance(leaves[0], Tensor)
        pool = _build(ops, leaves, Tensor.gelu if ours else _torch_gelu)
        w = weights if ours else torch.tensor(weights)
        # weight the last three nodes so that every gradient entry is distinct
        return sum((node * w[k]).sum() for k, node in enumerate(pool[-3:]))

    _assert_matches_torch(arrays, build)


def _torch_gelu(x):
    return F.gelu(x, approximate="tanh")


def _permute(x, *axes):
    """Tensor.transpose(*axes) is torch's permute (torch's transpose swaps two axes)."""
    return x.transpose(*axes) if isinstance(x, Tensor) else x.permute(*axes)


# graphs with the ops whose shapes leave the broadcast family: matmul, indexing, reshape,
# transpose, reductions over several axes, log_softmax and cross-entropy
STRUCTURAL = {
    "matmul-2d": ([(3, 4), (4, 5)], lambda a, b: ((a @ b).tanh() * (a @ b)).sum()),
    "matmul-vector-left": ([(4,), (4, 5)], lambda a, b: ((a @ b) ** 2).sum()),
    "matmul-vector-right": ([(3, 4), (4,)], lambda a, b: ((a @ b).sigmoid()).sum()),
    "matmul-batched-broadcast": ([(2, 3, 4), (4, 2)], lambda a, b: ((a @ b).exp()).mean()),
    "matmul-transpose": ([(3, 4), (5, 4)], lambda a, b: (a @ b.T + a.sum()).relu().sum()),
    "transpose-axes": ([(2, 3, 4)], lambda a: (_permute(a, 2, 0, 1) ** 3).sum()),
    "reshape": ([(2, 6)], lambda a: (a.reshape(3, 4) @ a.reshape(4, 3)).sum()),
    "index-int-slice": ([(4, 5)], lambda a: (a[1] * a[2:, ::2].sum(axis=0).sum()).sum()),
    "index-repeated-array": ([(5, 3)], lambda a: (a[np.array([0, 2, 2, 4, 0])] ** 2).sum()),
    "index-pairs": (
        [(4, 3)],
        lambda a: (a[np.array([0, 1, 1, 3]), np.array([2, 0, 0, 1])].exp()).sum(),
    ),
    "mean-tuple-axes": ([(2, 3, 4)], lambda a: (a.mean(axis=(0, 2)) ** 2).sum()),
    "sum-keepdims-broadcast": ([(3, 4)], lambda a: (a / _positive(a.sum(axis=0))).sum()),
    "log-softmax": ([(4, 5)], lambda a: (a.log_softmax(axis=-1) * a).sum()),
    "log-softmax-axis0": ([(4, 5)], lambda a: (a.log_softmax(axis=0) ** 2).sum()),
}


@pytest.mark.parametrize("name", STRUCTURAL)
def test_structural_ops_match_torch(name):
    shapes, build = STRUCTURAL[name]
    _assert_matches_torch(_leaves(shapes, seed=len(name)), build)


def test_cross_entropy_matches_torch_and_survives_large_logits():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 4)) * 3
    logits[0] += 1000.0  # exp would overflow without the log-sum-exp shift
    targets = np.array([0, 3, 1, 1, 2, 0])

    def build(x):
        if isinstance(x, Tensor):
            return cross_entropy(x, targets)
        return F.cross_entropy(x, torch.tensor(targets))

    _assert_matches_torch([logits], build)


def test_backward_takes_an_upstream_gradient_and_leaves_accumulate():
    rng = np.random.default_rng(1)
    a_np, g_np = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    a, ta = Tensor(a_np), torch.tensor(a_np, requires_grad=True)
    out, ref = (a * a).tanh(), (ta * ta).tanh()
    out.backward(g_np)
    ref.backward(torch.tensor(g_np))
    np.testing.assert_allclose(a.grad, ta.grad.numpy(), rtol=GRAD_TOL, atol=GRAD_TOL)
    (a * a).tanh().backward(g_np)  # a second graph: the leaf accumulates, as in torch
    np.testing.assert_allclose(a.grad, 2 * ta.grad.numpy(), rtol=GRAD_TOL, atol=GRAD_TOL)
    a.zero_grad()
    assert np.all(a.grad == 0) and a.grad.shape == a.data.shape
    with pytest.raises(ValueError, match="single-element"):
        out.backward()


def test_dtypes_and_reflected_operators():
    assert Tensor([1, 2]).data.dtype == np.float64  # integers become float64
    t32 = Tensor(np.ones(3, dtype=np.float32))
    assert (2 * t32 - 1).data.dtype == np.float32  # a plain number keeps the dtype
    assert t32.grad.dtype == np.float32
    t = Tensor(np.arange(3.0))
    np.testing.assert_array_equal((np.ones(3) - t).data, 1 - np.arange(3.0))
    np.testing.assert_array_equal((2.0**t).data, 2.0 ** np.arange(3.0))
    np.testing.assert_array_equal((np.eye(3) @ t).data, np.arange(3.0))
    with np.errstate(over="raise", invalid="raise"):  # no overflow at the extremes
        extreme = Tensor([-1000.0, 1000.0])
        np.testing.assert_array_equal(extreme.sigmoid().data, [0.0, 1.0])
        assert Value(-1000.0).sigmoid().data == 0.0 and Value(1000.0).sigmoid().data == 1.0


# central finite differences of scalar functions of one (n, k) input
FD_FUNCTIONS = {
    "mlp-cross-entropy": lambda x: cross_entropy(
        (x @ Tensor(_fixed((3, 5), 0))).gelu() @ Tensor(_fixed((5, 4), 1)), [0, 3, 1, 2]
    ),
    "indexing-mean-axes": lambda x: (x[np.array([0, 0, 3]), 1:] ** 2).mean(axis=0).sigmoid().sum(),
    "log-softmax-transpose": lambda x: (x.T.log_softmax(axis=0) * Tensor(_fixed((3, 4), 2))).sum(),
    "reshape-matmul-log": lambda x: (x.reshape(2, 6) @ x.reshape(6, 2)).exp().sum().log(),
    "mean-keepdims-div": lambda x: (x / (x * x).mean(axis=1, keepdims=True) ** 0.5).tanh().sum(),
}


def _fixed(shape, seed):
    return np.random.default_rng(100 + seed).normal(size=shape)


@pytest.mark.parametrize("name", FD_FUNCTIONS)
def test_gradients_match_central_finite_differences(name):
    f = FD_FUNCTIONS[name]
    x0 = _fixed((4, 3), 9)
    x = Tensor(x0)
    f(x).backward()
    numeric = np.zeros_like(x0)
    for i in np.ndindex(x0.shape):
        step = np.zeros_like(x0)
        step[i] = FD_STEP
        numeric[i] = (f(Tensor(x0 + step)).item() - f(Tensor(x0 - step)).item()) / (2 * FD_STEP)
    np.testing.assert_allclose(x.grad, numeric, rtol=FD_TOL, atol=FD_TOL)


def test_value_matches_torch_on_micrograd_expression():
    def expression(a, b):
        c = a + b
        d = a * b + b**3
        c = c + c + 1
        c = c + 1 + c + (-a)
        d = d + d * 2 + (b + a).relu()
        d = d + 3 * d + (b - a).relu()
        e = c - d
        f = e**2
        g = f / 2.0
        g = g + 10.0 / f
        h = (g * 1e-3).tanh() + (a * 0.1).sigmoid() + (b.exp() + 1).log() - 1 / (a * a + 1)
        h = h * (2.0 - a).sigmoid() - (-b).relu() + (-a).relu()
        return h

    a, b = Value(-4.0), Value(2.0)
    ta = torch.tensor(-4.0, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    out, ref = expression(a, b), expression(ta, tb)
    out.backward()
    ref.backward()
    assert out.data == pytest.approx(ref.item(), rel=GRAD_TOL, abs=GRAD_TOL)
    assert a.grad == pytest.approx(ta.grad.item(), rel=GRAD_TOL, abs=GRAD_TOL)
    assert b.grad == pytest.approx(tb.grad.item(), rel=GRAD_TOL, abs=GRAD_TOL)
