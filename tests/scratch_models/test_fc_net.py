"""The fully connected net: gradient checks at several depths, training, and the update rules.

The gradients of ``FullyConnectedNet.loss`` are checked against central differences in float64
(``gradcheck``); the update rules against ``torch.optim`` on the same gradients; the trainer by
overfitting 50 digits.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from scratch_models import fc_net
from scratch_models.fc_net import FullyConnectedNet, train
from tests.scratch_models.gradcheck import (
    GRAD_TOL,
    is_well_conditioned,
    numerical_gradient,
    rel_error,
)

BN_BIAS_TOL = 1e-9  # |gradient| of a bias feeding batchnorm, exactly 0 in exact arithmetic
OPTIM_TOL = 1e-12  # our update rules vs torch.optim, float64

# (hidden_dims, normalization, dropout, reg, activation): one to four affine layers
NET_CASES = [
    ([], None, 0.0, 0.0, "relu"),
    ([7], None, 0.0, 0.5, "relu"),
    ([8, 6], None, 0.25, 0.0, "relu"),
    ([8, 6], "batchnorm", 0.0, 0.0, "relu"),
    ([8, 6], "layernorm", 0.25, 0.3, "relu"),
    ([9, 7, 6], "batchnorm", 0.2, 0.3, "relu"),
    ([9, 7, 6], "layernorm", 0.0, 0.0, "relu"),
    ([7], "layernorm", 0.0, 0.2, "leaky_relu"),
    ([7, 6], None, 0.0, 0.1, "sigmoid"),
    ([7, 6], "batchnorm", 0.2, 0.0, "sigmoid"),
]


def _net_and_problem(case, seed, n=4, d=5, c=4):
    hidden, normalization, dropout, reg, activation = case
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(n, d)), rng.integers(0, c, size=n)
    init = "xavier" if activation == "sigmoid" else "he"
    net = FullyConnectedNet(
        hidden,
        d,
        c,
        activation=activation,
        normalization=normalization,
        dropout=dropout,
        reg=reg,
        init=init,
        seed=seed,
    )
    net.dropout_param["seed"] = seed  # the same dropout mask on every forward pass
    return net, X, y


def _is_bias_before_batchnorm(net, name):
    match = re.fullmatch(r"b(\d+)", name)
    return net.normalization == "batchnorm" and match and int(match[1]) < net.num_layers


def _case_id(case):
    hidden, normalization, dropout, reg, activation = case
    return f"{len(hidden) + 1}layers-{activation}-{normalization}-dropout{dropout}-reg{reg}"


@pytest.mark.parametrize("case", NET_CASES, ids=_case_id)
def test_net_gradients_match_central_differences(case):
    # the first seed whose analytic gradients the check can resolve (see gradcheck): the
    # choice looks at the analytic gradients only, never at the comparison
    for seed in range(50):
        net, X, y = _net_and_problem(case, seed)
        _, grads = net.loss(X, y)
        checked = [name for name in net.params if not _is_bias_before_batchnorm(net, name)]
        if is_well_conditioned([grads[name] for name in checked]):
            break
    else:
        raise AssertionError("no seed gave gradients the check can resolve")
    assert set(grads) == set(net.params)
    for name, param in net.params.items():
        assert grads[name].shape == param.shape
        numeric = numerical_gradient(lambda: net.loss(X, y)[0], param)
        if name in checked:
            assert rel_error(grads[name], numeric) < GRAD_TOL, (seed, name)
        else:  # batchnorm subtracts the batch mean: the bias before it cannot move the loss
            assert np.abs(grads[name]).max() < BN_BIAS_TOL
            assert np.abs(numeric).max() < BN_BIAS_TOL


def test_scores_in_eval_mode_and_the_loss_at_initialisation():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 10)), rng.integers(0, 10, size=200)
    net = FullyConnectedNet([20, 20], 10, 10, init="small", seed=0)
    scores = net.loss(X)
    assert scores.shape == (200, 10)
    np.testing.assert_array_equal(net.predict(X), scores.argmax(axis=1))
    assert net.loss(X, y)[0] == pytest.approx(np.log(10), rel=1e-3)  # uniform scores
    net.reg = 2.0
    weights = sum(np.sum(net.params[f"W{k}"] ** 2) for k in (1, 2, 3))
    assert net.loss(X, y)[0] == pytest.approx(np.log(10) + weights, rel=1e-3)


def test_init_scales_and_bias_init():
    for init, std in [("he", np.sqrt(2 / 400)), ("xavier", np.sqrt(2 / 800)), ("small", 0.01)]:
        W1 = FullyConnectedNet([400], 400, 3, init=init, seed=0).params["W1"]
        assert W1.std() == pytest.approx(std, rel=0.02)
    net = FullyConnectedNet([400], 400, 3, weight_scale=0.5, bias_init=-3.0, dtype=np.float32)
    assert net.params["W1"].std() == pytest.approx(0.5, rel=0.02)
    assert net.params["W1"].dtype == np.float32
    np.testing.assert_array_equal(net.params["b1"], -3.0)
    np.testing.assert_array_equal(net.params["b2"], 0.0)  # the output layer's bias stays 0


def test_batchnorm_dropout_and_modes():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 5)), rng.integers(0, 3, size=64)
    net = FullyConnectedNet([16], 5, 3, normalization="batchnorm", dropout=0.5, seed=0)
    net.loss(X, y)
    assert np.any(net.bn_params[0]["running_mean"] != 0)  # train mode moved the statistics
    np.testing.assert_array_equal(net.loss(X), net.loss(X))  # eval: deterministic, no dropout
    assert net.loss(X, y)[0] != net.loss(X, y)[0]  # train: a fresh dropout mask each call
    pre = net.preactivations(X)
    assert [p.shape for p in pre] == [(64, 16)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"activation": "tanh"},
        {"normalization": "groupnorm"},
        {"init": "lecun"},
        {"dropout": 1.0},
    ],
)
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        FullyConnectedNet([4], 3, 2, **kwargs)


@pytest.mark.parametrize(
    ("rule", "config", "oracle"),
    [
        ("sgd", {"learning_rate": 0.1}, lambda p: torch.optim.SGD(p, lr=0.1)),
        (
            "sgd_momentum",
            {"learning_rate": 0.1, "momentum": 0.9},
            lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
        ),
        (
            "adam",
            {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-8},
            lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-8),
        ),
    ],
)
def test_update_rules_match_torch_optim(rule, config, oracle):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3))
    wt = torch.tensor(w.copy(), requires_grad=True)
    optimizer = oracle([wt])
    config = dict(config)
    for _ in range(5):
        dw = rng.normal(size=w.shape)
        w, config = fc_net.UPDATE_RULES[rule](w, dw, config)
        wt.grad = torch.tensor(dw)
        optimizer.step()
    np.testing.assert_allclose(w, wt.detach().numpy(), atol=OPTIM_TOL)


def test_training_overfits_fifty_digits():
    X, y = load_digits(return_X_y=True)
    X, y = X[:50] / 16, y[:50]
    net = FullyConnectedNet([64, 64], 64, 10, seed=0)
    history = train(
        net,
        X,
        y,
        update_rule="adam",
        optim_config={"learning_rate": 1e-2},
        batch_size=25,
        num_iters=200,
        seed=0,
    )
    assert np.mean(net.predict(X) == y) == 1.0
    assert len(history.loss) == 200 and not history.diverged
    assert history.loss[-1] < 0.05 * history.loss[0]
    assert set(history.grad_norms) == {"W1", "W2", "W3"}
    assert all(len(v) == 200 and min(v) >= 0 for v in history.grad_norms.values())


def test_training_stops_and_reports_divergence():
    X, y = load_digits(return_X_y=True)
    net = FullyConnectedNet([32, 32], 64, 10, weight_scale=1e120, seed=0)  # scores overflow
    history = train(net, X, y, num_iters=10, seed=0)
    assert history.diverged and history.loss == []
    net = FullyConnectedNet([32, 32], 64, 10, seed=0)
    assert not train(net, X / 16, y, num_iters=10, seed=0).diverged
