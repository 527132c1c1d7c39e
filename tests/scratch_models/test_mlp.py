"""The hand-written MLP: its backward pass against finite differences and against PyTorch's
autograd, its Adam against ``torch.optim.Adam``, early stopping, and a real fit (digits).

All gradient comparisons run in float64 on a small network (12-7-5-4, batch of 9).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import train_test_split
from sklearn.utils.estimator_checks import parametrize_with_checks

from scratch_models.mlp import (
    EPS_BN,
    MOMENTUM_BN,
    MLPClassifier,
    adam_step,
    backward,
    forward,
    init_params,
    log_softmax,
    validation_rows,
)

FD_TOL = 1e-6  # max relative error of the backward pass against central differences
FD_STEP = 1e-6
TORCH_TOL = 1e-10  # |ours - torch| / (1 + |torch|): loss, gradients, running stats, Adam
DIGITS_ACCURACY = 0.95  # held-out accuracy on sklearn's 8x8 digits
SIZES = (12, 7, 5, 4)


def _batch(seed=0, n=9):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, SIZES[0]))
    y = np.arange(n) % SIZES[-1]
    return X, y


def _params(batch_norm, seed=1):
    params = init_params(SIZES, batch_norm, np.random.default_rng(seed), np.float64)
    rng = np.random.default_rng(seed + 100)
    for name in params:  # move gamma, beta and the biases off their trivial starting values
        if not name.startswith("W"):
            params[name] = params[name] + 0.3 * rng.normal(size=params[name].shape)
    return params


def _loss_grads(params, X, y, alpha, dropout):
    # a fresh generator with one seed: every evaluation draws the same dropout masks
    logits, cache = forward(params, X, dropout=dropout, rng=np.random.default_rng(5))
    return backward(params, logits, cache, y, alpha)


@pytest.mark.parametrize(
    ("batch_norm", "dropout", "alpha"),
    [(True, 0.0, 0.0), (True, 0.0, 0.1), (False, 0.0, 0.1), (True, 0.3, 0.05)],
)
def test_backward_matches_central_differences(batch_norm, dropout, alpha):
    X, y = _batch()
    params = _params(batch_norm)
    _, grads = _loss_grads(params, X, y, alpha, dropout)
    assert set(grads) == set(params)
    for name, value in params.items():
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            shifted = {k: v.copy() for k, v in params.items()}
            shifted[name][index] = value[index] + FD_STEP
            up = _loss_grads(shifted, X, y, alpha, dropout)[0]
            shifted[name][index] = value[index] - FD_STEP
            down = _loss_grads(shifted, X, y, alpha, dropout)[0]
            numeric[index] = (up - down) / (2 * FD_STEP)
        error = np.abs(grads[name] - numeric).max() / max(np.abs(numeric).max(), 1e-8)
        assert error < FD_TOL, (name, error)


def _torch_net(torch, params, batch_norm):
    """The same network in PyTorch, holding copies of ``params`` (weights transposed)."""
    layers = []
    n_hidden = len(SIZES) - 2
    for i in range(n_hidden):
        linear = torch.nn.Linear(SIZES[i], SIZES[i + 1], bias=not batch_norm).double()
        linear.weight.data = torch.tensor(params[f"W{i}"].T.copy())
        layers.append(linear)
        if batch_norm:
            bn = torch.nn.BatchNorm1d(SIZES[i + 1], eps=EPS_BN, momentum=MOMENTUM_BN).double()
            bn.weight.data = torch.tensor(params[f"gamma{i}"])
            bn.bias.data = torch.tensor(params[f"beta{i}"])
            layers.append(bn)
        else:
            linear.bias.data = torch.tensor(params[f"b{i}"])
        layers.append(torch.nn.ReLU())
    out = torch.nn.Linear(SIZES[-2], SIZES[-1]).double()
    out.weight.data = torch.tensor(params[f"W{n_hidden}"].T.copy())
    out.bias.data = torch.tensor(params[f"b{n_hidden}"])
    return torch.nn.Sequential(*layers, out)


def _close(ours, theirs):
    theirs = np.asarray(theirs)
    assert ours.shape == theirs.shape
    assert np.max(np.abs(ours - theirs) / (1 + np.abs(theirs))) < TORCH_TOL


@pytest.mark.parametrize("batch_norm", [True, False])
def test_forward_and_backward_match_torch_autograd(batch_norm):
    torch = pytest.importorskip("torch")
    X, y = _batch(n=16)
    params = _params(batch_norm)
    stats = [[np.zeros(s), np.ones(s)] for s in SIZES[1:-1]]
    logits, cache = forward(params, X, stats=stats)
    loss, grads = backward(params, logits, cache, y)

    net = _torch_net(torch, params, batch_norm).train()
    theirs = net(torch.tensor(X))
    torch_loss = torch.nn.functional.cross_entropy(theirs, torch.tensor(y))
    torch_loss.backward()
    _close(logits, theirs.detach().numpy())
    _close(np.array(loss), torch_loss.item())
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    norms = [m for m in net if isinstance(m, torch.nn.BatchNorm1d)]
    for i, linear in enumerate(linears):
        _close(grads[f"W{i}"], linear.weight.grad.numpy().T)
        if linear.bias is not None:
            _close(grads[f"b{i}"], linear.bias.grad.numpy())
    for i, bn in enumerate(norms):
        _close(grads[f"gamma{i}"], bn.weight.grad.numpy())
        _close(grads[f"beta{i}"], bn.bias.grad.numpy())
        _close(stats[i][0], bn.running_mean.numpy())
        _close(stats[i][1], bn.running_var.numpy())
    if batch_norm:  # predict mode reads the running statistics, as torch's eval()
        _close(
            forward(params, X, stats=stats, train=False)[0],
            net.eval()(torch.tensor(X)).detach().numpy(),
        )


def test_adam_matches_torch_optim_adam():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    params = {"W0": rng.normal(size=(5, 3)), "b0": rng.normal(size=3)}
    theirs = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    opt = torch.optim.Adam(theirs.values(), lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    state = {}
    for step, lr in enumerate([0.01, 0.007, 0.003, 0.02, 0.001]):  # a changing schedule
        grads = {k: rng.normal(size=v.shape) * 10.0 ** (step - 2) for k, v in params.items()}
        adam_step(params, grads, state, lr, 0.8, 0.99, 1e-6)
        for group in opt.param_groups:
            group["lr"] = lr
        for k, p in theirs.items():
            p.grad = torch.tensor(grads[k])
        opt.step()
        for k in params:
            _close(params[k], theirs[k].detach().numpy())
    assert state["t"] == 5


def _digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)


def test_fits_digits_accurately():
    X_train, X_test, y_train, y_test = _digits()
    model = MLPClassifier(random_state=0).fit(X_train, y_train)
    accuracy = np.mean(model.predict(X_test) == y_test)
    assert accuracy > DIGITS_ACCURACY, accuracy
    assert model.n_iter_ == 30 and model.t_ == 30 * int(np.ceil(len(y_train) / 128))
    assert model.loss_curve_[-1] < model.loss_curve_[0] / 10
    proba = model.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], model.predict(X_test))


def test_early_stopping_restores_the_best_weights():
    X_train, _, y_train, _ = _digits()
    y_train = y_train.copy()
    y_train[::4] = (y_train[::4] + 3) % 10  # label noise: the held-out loss turns up
    model = MLPClassifier(
        (256,),
        max_iter=60,
        dropout=0.0,
        alpha=0.0,
        learning_rate_init=0.003,
        early_stopping=True,
        validation_fraction=0.2,
        n_iter_no_change=5,
        random_state=0,
    ).fit(X_train, y_train)
    curve = np.array(model.validation_loss_curve_)
    best = int(np.argmin(curve))
    assert best < model.n_iter_ - 1 and model.n_iter_ < 60  # stopped, and later than its best
    # the split fit() drew first from its generator; the restored model scores the best loss
    valid = validation_rows(
        np.unique(y_train, return_inverse=True)[1], 0.2, np.random.default_rng(0)
    )
    log_p = np.log(model.predict_proba(X_train[valid]))
    held_out = -log_p[np.arange(valid.sum()), y_train[valid]].mean()
    assert held_out == pytest.approx(curve[best], rel=1e-5)
    assert model.best_validation_loss_ == curve[best]


def test_determinism_and_refit():
    X_train, X_test, y_train, _ = _digits()
    small = MLPClassifier((32,), max_iter=5, random_state=3)
    first = clone(small).fit(X_train, y_train).predict_proba(X_test)
    np.testing.assert_array_equal(clone(small).fit(X_train, y_train).predict_proba(X_test), first)
    other = clone(small).set_params(random_state=4).fit(X_train, y_train).predict_proba(X_test)
    assert np.abs(other - first).max() > 1e-3
    refit = clone(small).fit(X_train[:200], y_train[:200]).fit(X_train, y_train)
    np.testing.assert_array_equal(refit.predict_proba(X_test), first)
    with pytest.raises(NotFittedError):
        clone(small).predict(X_test)
    with pytest.raises(ValueError, match="dropout"):
        clone(small).set_params(dropout=1.0).fit(X_train, y_train)


def test_float64_and_float32_agree_and_log_softmax_is_stable():
    X_train, X_test, y_train, _ = _digits()
    kwargs = dict(hidden_layer_sizes=(32,), max_iter=3, dropout=0.0, random_state=0)
    p32 = MLPClassifier(**kwargs).fit(X_train, y_train).predict_proba(X_test)
    p64 = MLPClassifier(**kwargs, dtype=np.float64).fit(X_train, y_train).predict_proba(X_test)
    assert np.abs(p32 - p64).max() < 1e-3
    assert np.isfinite(log_softmax(np.array([[1e4, -1e4, 0.0]]))).all()


@parametrize_with_checks(
    [MLPClassifier((16,), max_iter=40, learning_rate_init=0.01, random_state=0)]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
