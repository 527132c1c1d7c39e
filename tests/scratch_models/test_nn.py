"""Oracle tests: scratch layers and optimisers against torch.nn / torch.optim, and a training run.

The optimisers get the same initial weights and the same gradient sequence as torch's and
must land on the same parameters; the layers get torch's weights and must give the same
outputs. The end-to-end check trains an MLP on two moons with the scratch autograd.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split

from scratch_models.autograd import Tensor
from scratch_models.demos import moons
from scratch_models.nn import (
    GELU,
    MLP,
    SGD,
    Adam,
    AdamW,
    Linear,
    ReLU,
    Sigmoid,
    Tanh,
    cross_entropy,
    he_normal,
    mse_loss,
    xavier_uniform,
)

torch = pytest.importorskip("torch")

OPTIM_TOL = 1e-12  # parameters after N steps vs torch.optim, float64
FORWARD_TOL = 1e-12  # layer outputs vs torch.nn, float64
INIT_RTOL = 0.03  # sample std of 200k initial weights vs the theoretical one
MOONS_ACCURACY = 0.97  # held-out accuracy the trained MLP must reach
N_STEPS = 6

OPTIMISERS = {
    "sgd-plain": (SGD, torch.optim.SGD, dict(lr=0.1)),
    "sgd-momentum-decay": (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    "sgd-nesterov": (
        SGD,
        torch.optim.SGD,
        dict(lr=0.05, momentum=0.8, weight_decay=0.1, nesterov=True),
    ),
    "adam": (Adam, torch.optim.Adam, dict(lr=0.01)),
    "adam-l2": (
        Adam,
        torch.optim.Adam,
        dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    ),
    "adamw-default-decay": (AdamW, torch.optim.AdamW, dict(lr=0.01)),
    "adamw": (AdamW, torch.optim.AdamW, dict(lr=0.03, betas=(0.85, 0.95), weight_decay=0.3)),
}


@pytest.mark.parametrize("name", OPTIMISERS)
def test_optimisers_match_torch_optim(name):
    ours_cls, torch_cls, kwargs = OPTIMISERS[name]
    rng = np.random.default_rng(0)
    shapes = [(4, 3), (3,), ()]
    initial = [rng.normal(size=s) for s in shapes]
    ours = [Tensor(w) for w in initial]
    theirs = [torch.tensor(w, requires_grad=True) for w in initial]
    ours_opt, torch_opt = ours_cls(ours, **kwargs), torch_cls(theirs, **kwargs)
    for _ in range(N_STEPS):
        grads = [rng.normal(size=s) for s in shapes]  # the same gradients for both
        ours_opt.zero_grad()
        torch_opt.zero_grad()
        for p, t, g in zip(ours, theirs, grads, strict=True):
            p.grad += g
            t.grad = torch.tensor(g)
        ours_opt.step()
        torch_opt.step()
        for p, t in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=0, atol=OPTIM_TOL)
    for p, w in zip(ours, initial, strict=True):
        assert not np.allclose(p.data, w)  # the parameters moved


def test_optimiser_trains_through_autograd_like_torch():
    # a real loss: gradients from each engine, Adam from each library, 20 steps
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(32, 5)), rng.normal(size=(32, 1))
    layer = Linear(5, 1, seed=2)
    twin = torch.nn.Linear(5, 1, dtype=torch.float64)
    with torch.no_grad():
        twin.weight.copy_(torch.tensor(layer.weight.data))
        twin.bias.copy_(torch.tensor(layer.bias.data))
    ours_opt = Adam(layer.parameters(), lr=0.05, weight_decay=0.01)
    torch_opt = torch.optim.Adam(twin.parameters(), lr=0.05, weight_decay=0.01)
    for _ in range(20):
        ours_opt.zero_grad()
        mse_loss(layer(X), y).backward()
        ours_opt.step()
        torch_opt.zero_grad()
        torch.nn.functional.mse_loss(twin(torch.tensor(X)), torch.tensor(y)).backward()
        torch_opt.step()
    np.testing.assert_allclose(layer.weight.data, twin.weight.detach().numpy(), atol=OPTIM_TOL)
    np.testing.assert_allclose(layer.bias.data, twin.bias.detach().numpy(), atol=OPTIM_TOL)


def test_linear_and_mlp_forward_match_torch():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(10, 4))
    layers = {"relu": torch.nn.ReLU(), "tanh": torch.nn.Tanh(), "sigmoid": torch.nn.Sigmoid()}
    layers["gelu"] = torch.nn.GELU(approximate="tanh")
    for activation, torch_activation in layers.items():
        model = MLP([4, 8, 6, 3], activation=activation, seed=4)
        linears = [layer for layer in model.layers if isinstance(layer, Linear)]
        twin_layers = []
        for layer in linears:
            twin = torch.nn.Linear(*layer.weight.shape[::-1], dtype=torch.float64)
            with torch.no_grad():
                twin.weight.copy_(torch.tensor(layer.weight.data))
                twin.bias.copy_(torch.tensor(layer.bias.data))
            twin_layers += [twin, torch_activation]
        twin_model = torch.nn.Sequential(*twin_layers[:-1])
        expected = twin_model(torch.tensor(X)).detach().numpy()
        np.testing.assert_allclose(model(X).data, expected, rtol=0, atol=FORWARD_TOL)
    assert len(model.parameters()) == 6  # three weights, three biases
    no_bias = Linear(4, 2, bias=False, seed=0)
    assert no_bias.parameters() == [no_bias.weight]
    np.testing.assert_allclose(no_bias(X).data, X @ no_bias.weight.data.T, atol=FORWARD_TOL)


def test_activation_modules_and_losses():
    x = np.linspace(-3, 3, 7)
    tx = torch.tensor(x)
    for module, twin in [
        (ReLU(), torch.relu),
        (Tanh(), torch.tanh),
        (Sigmoid(), torch.sigmoid),
        (GELU(), lambda t: torch.nn.functional.gelu(t, approximate="tanh")),
    ]:
        np.testing.assert_allclose(module(x).data, twin(tx).numpy(), atol=FORWARD_TOL)
        assert module.parameters() == []
    prediction, target = np.array([[1.0, 2.0], [3.0, 5.0]]), np.array([[1.5, 2.0], [2.0, 4.0]])
    # squared errors 0.25, 0, 1, 1
    assert mse_loss(Tensor(prediction), target).item() == pytest.approx(0.5625, rel=1e-15)
    logits, labels = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 3.0]]), np.array([0, 2])
    expected = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(labels))
    assert cross_entropy(Tensor(logits), labels).item() == pytest.approx(expected.item())


def test_initialisation_statistics():
    fan_in, fan_out = 400, 500
    he = he_normal(fan_in, fan_out, seed=0)
    assert he.shape == (fan_out, fan_in)
    assert abs(he.mean()) < 0.01 * math.sqrt(2 / fan_in)
    assert he.std() == pytest.approx(math.sqrt(2 / fan_in), rel=INIT_RTOL)

    xavier = xavier_uniform(fan_in, fan_out, seed=0)
    bound = math.sqrt(6 / (fan_in + fan_out))
    assert xavier.shape == (fan_out, fan_in)
    assert np.abs(xavier).max() <= bound
    assert np.abs(xavier).max() > 0.999 * bound  # the whole interval is used
    assert xavier.std() == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=INIT_RTOL)

    np.testing.assert_array_equal(Linear(3, 2, seed=5).weight.data, he_normal(3, 2, seed=5))
    np.testing.assert_array_equal(
        Linear(3, 2, init="xavier", seed=5).weight.data, xavier_uniform(3, 2, seed=5)
    )
    np.testing.assert_array_equal(Linear(3, 2, seed=5).bias.data, np.zeros(2))
    with pytest.raises(ValueError, match="init"):
        Linear(3, 2, init="orthogonal")
    with pytest.raises(ValueError, match="activation"):
        MLP([2, 3, 1], activation="swish")


def test_mlp_learns_two_moons():
    X, y = make_moons(1000, noise=0.1, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, random_state=0, stratify=y
    )
    model = MLP([2, 32, 2], activation="relu", seed=0)  # two Linear layers
    optimizer = Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(200):
        optimizer.zero_grad()
        loss = cross_entropy(model(X_train), y_train)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    accuracy = np.mean(model(X_test).data.argmax(axis=1) == y_test)
    assert losses[-1] < 0.1 * losses[0]
    assert accuracy >= MOONS_ACCURACY


def test_moons_demo_writes_a_png(tmp_path, capsys):
    out = tmp_path / "boundary.png"
    accuracy = moons.main(["--out", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert accuracy >= MOONS_ACCURACY
    assert f"{accuracy:.4f}" in capsys.readouterr().out
