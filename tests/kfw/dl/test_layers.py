"""``kfw.dl.layers``: our BatchNorm1d against torch's, dropout and max-norm against their definitions."""

from __future__ import annotations

import pytest
import torch

from kfw.dl.layers import BatchNorm1d, Dropout, ReplicaLinear, max_norm_

PARITY = 1e-6  # the tolerance, in float64
MC_TOL = 0.02  # Monte-Carlo tolerance for dropout's expectation and mask rate (~10 sigma)

torch.set_num_threads(1)


def _pair(c: int, momentum: float | None) -> tuple[BatchNorm1d, torch.nn.BatchNorm1d]:
    ours = BatchNorm1d(c, eps=1e-5, momentum=momentum).double()
    ref = torch.nn.BatchNorm1d(c, eps=1e-5, momentum=momentum).double()
    with torch.no_grad():  # non-trivial gamma / beta so their gradients mean something
        g, b = torch.randn(c, dtype=torch.float64), torch.randn(c, dtype=torch.float64)
        ours.weight.copy_(g), ref.weight.copy_(g), ours.bias.copy_(b), ref.bias.copy_(b)
    return ours, ref


@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_batchnorm_matches_torch(momentum: float | None) -> None:
    torch.manual_seed(0)
    ours, ref = _pair(7, momentum)
    for step in range(5):
        x = (torch.randn(13, 7, dtype=torch.float64) * 3 + step).requires_grad_()
        x2 = x.detach().clone().requires_grad_()
        w = torch.randn(13, 7, dtype=torch.float64)  # a random upstream gradient
        y, y_ref = ours(x), ref(x2)
        torch.testing.assert_close(y, y_ref, atol=PARITY, rtol=0)
        (y * w).sum().backward()
        (y_ref * w).sum().backward()
        torch.testing.assert_close(x.grad, x2.grad, atol=PARITY, rtol=0)
        torch.testing.assert_close(ours.weight.grad, ref.weight.grad, atol=PARITY, rtol=0)
        torch.testing.assert_close(ours.bias.grad, ref.bias.grad, atol=PARITY, rtol=0)
        for p in (*ours.parameters(), *ref.parameters()):
            p.grad = None
        torch.testing.assert_close(ours.running_mean, ref.running_mean, atol=PARITY, rtol=0)
        torch.testing.assert_close(ours.running_var, ref.running_var, atol=PARITY, rtol=0)
    assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 5
    ours.eval(), ref.eval()
    x = torch.randn(4, 7, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x), atol=PARITY, rtol=0)


def test_algorithm2_population_statistics() -> None:
    """momentum=None: E[x] = mean of batch means, Var[x] = m/(m-1) * mean of batch variances."""
    torch.manual_seed(1)
    bn = BatchNorm1d(3, momentum=None).double()
    batches = [torch.randn(10, 3, dtype=torch.float64) * (i + 1) + i for i in range(6)]
    for x in batches:
        bn(x)
    m = 10
    mean = torch.stack([x.mean(0) for x in batches]).mean(0)
    var = m / (m - 1) * torch.stack([x.var(0, unbiased=False) for x in batches]).mean(0)
    torch.testing.assert_close(bn.running_mean, mean, atol=PARITY, rtol=0)
    torch.testing.assert_close(bn.running_var, var, atol=PARITY, rtol=0)
    bn.eval()
    x = torch.randn(5, 3, dtype=torch.float64)
    expect = bn.weight * (x - mean) / torch.sqrt(var + bn.eps) + bn.bias
    torch.testing.assert_close(bn(x), expect, atol=PARITY, rtol=0)


def test_training_output_is_normalised() -> None:
    torch.manual_seed(2)
    bn = BatchNorm1d(4).double()
    y = bn(torch.randn(64, 4, dtype=torch.float64) * 5 + 3)
    torch.testing.assert_close(y.mean(0), torch.zeros(4, dtype=torch.float64), atol=PARITY, rtol=0)
    torch.testing.assert_close(
        y.var(0, unbiased=False), torch.ones(4, dtype=torch.float64), atol=1e-3, rtol=0
    )  # var/(var+eps): off by eps/var ~ 4e-7 only, well inside


def test_replicas_are_independent_batchnorms() -> None:
    torch.manual_seed(3)
    r, c = 3, 5
    multi = BatchNorm1d(c, momentum=0.2, replicas=r).double()
    singles = [BatchNorm1d(c, momentum=0.2).double() for _ in range(r)]
    with torch.no_grad():
        multi.weight.copy_(torch.randn(r, 1, c))
        for i, s in enumerate(singles):
            s.weight.copy_(multi.weight[i, 0])
    for _ in range(3):
        x = torch.randn(r, 8, c, dtype=torch.float64)
        y = multi(x)
        for i, s in enumerate(singles):
            torch.testing.assert_close(y[i], s(x[i]), atol=PARITY, rtol=0)
    for i, s in enumerate(singles):
        torch.testing.assert_close(multi.running_var[i, 0], s.running_var, atol=PARITY, rtol=0)


def test_replica_linear_is_r_linears() -> None:
    torch.manual_seed(4)
    lin = ReplicaLinear(2, 6, 3)
    with torch.no_grad():
        lin.weight.normal_(), lin.bias.normal_()
    x = torch.randn(2, 4, 6)
    y = lin(x)
    for i in range(2):
        torch.testing.assert_close(y[i], x[i] @ lin.weight[i] + lin.bias[i])


@pytest.mark.parametrize("p", [0.8, 0.5])
def test_dropout_definition(p: float) -> None:
    torch.manual_seed(5)
    drop = Dropout(p)
    x = torch.rand(400, 500) + 0.5  # strictly positive: a zero in the output means dropped
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - p) < MC_TOL  # mask rate
    torch.testing.assert_close(y[kept], x[kept] / p)  # kept units scaled by 1/p
    # expectation preserved: the mean over many masks of one input row
    ones = torch.ones(20000, 50)
    assert (drop(ones).mean(0) - 1).abs().max().item() < 10 * MC_TOL
    assert abs(drop(ones).mean().item() - 1) < MC_TOL / 10
    drop.eval()
    assert drop(x) is x  # identity at inference


def test_dropout_per_replica_and_disabled() -> None:
    torch.manual_seed(6)
    drop = Dropout([1.0, 0.5])
    x = torch.ones(2, 300, 300)
    y = drop(x)
    assert torch.equal(y[0], x[0])  # p = 1: untouched
    assert abs((y[1] != 0).float().mean().item() - 0.5) < MC_TOL
    assert set(y[1].unique().tolist()) == {0.0, 2.0}
    assert Dropout(1.0)(x) is x
    with pytest.raises(ValueError):
        Dropout(0.0)


def test_max_norm() -> None:
    torch.manual_seed(7)
    w = torch.randn(6, 10)
    w[0] *= 0.01  # a short row: must stay exactly as it is
    before = w.clone()
    norms = before.norm(dim=1)
    c = 2.0
    max_norm_(w, c)
    after = w.norm(dim=1)
    assert torch.all(after <= c + 1e-6)
    long = norms > c
    torch.testing.assert_close(after[long], torch.full_like(after[long], c))
    assert torch.equal(w[~long], before[~long])
    # rescaled, not clipped elementwise: the direction of each row is unchanged
    torch.testing.assert_close(w[long] / after[long, None], before[long] / norms[long, None])


def test_max_norm_columns_with_per_replica_c() -> None:
    torch.manual_seed(8)
    w = torch.randn(2, 30, 5) * 2  # (R, in, out): unit j's incoming vector is w[r, :, j]
    before = w.clone()
    c = torch.tensor([1.0, float("inf")]).view(2, 1, 1)
    max_norm_(w, c, dim=-2)
    torch.testing.assert_close(w[0].norm(dim=0), torch.ones(5))
    assert torch.equal(w[1], before[1])  # c = inf leaves the replica alone
