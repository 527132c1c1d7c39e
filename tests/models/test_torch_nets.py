"""models/torch_nets.py: the networks, and their registry entries behind the design matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from kfw.core.registry import make_estimator
from kfw.errors import ConfigError
from models.torch_nets import MLP, BasicBlock, LeNet, ResNet
from scratch_models import mlp as scratch

torch.set_num_threads(1)
PORT_ATOL = 1e-5  # the torch MLP against the NumPy one with the same weights (float32)


def _ported(params, stats, n_in):
    """The torch MLP carrying the NumPy MLP's weights and running statistics."""
    net = MLP((n_in,), 3, hidden_layer_sizes=(16, 8), dropout=0.0)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    with torch.no_grad():
        for i, lin in enumerate(linears):
            lin.weight.copy_(torch.from_numpy(params[f"W{i}"].T))
            if lin.bias is not None:
                lin.bias.copy_(torch.from_numpy(params[f"b{i}"]))
        for i, bn in enumerate(norms):
            bn.weight.copy_(torch.from_numpy(params[f"gamma{i}"]))
            bn.bias.copy_(torch.from_numpy(params[f"beta{i}"]))
            bn.running_mean.copy_(torch.from_numpy(stats[i][0]))
            bn.running_var.copy_(torch.from_numpy(stats[i][1]))
    return net


def test_mlp_is_the_numpy_mlp_layer_for_layer():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 10)).astype(np.float32)
    params = scratch.init_params((10, 16, 8, 3), True, rng)
    stats = [[np.zeros(s, np.float32), np.ones(s, np.float32)] for s in (16, 8)]
    net = _ported(params, stats, 10)
    # same parameter set: no bias before batch norm, gamma / beta, a biased head
    assert sum(p.numel() for p in net.parameters()) == sum(v.size for v in params.values())
    # training mode: batch statistics, running averages updated the same way
    logits, _ = scratch.forward(params, X.copy(), stats=stats)
    net.train()
    torch.testing.assert_close(
        net(torch.from_numpy(X)), torch.from_numpy(logits), atol=PORT_ATOL, rtol=0
    )
    bn = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    for (mean, var), norm in zip(stats, bn, strict=True):
        np.testing.assert_allclose(norm.running_mean.numpy(), mean, atol=PORT_ATOL)
        np.testing.assert_allclose(norm.running_var.numpy(), var, atol=PORT_ATOL)
    # predict mode: running statistics
    logits, _ = scratch.forward(params, X.copy(), stats=stats, train=False)
    net.eval()
    torch.testing.assert_close(
        net(torch.from_numpy(X)), torch.from_numpy(logits), atol=PORT_ATOL, rtol=0
    )


def test_mlp_embeds_the_categorical_codes():
    net = MLP((5,), 2, hidden_layer_sizes=(8,), cardinalities=(3, 40))
    assert [e.num_embeddings for e in net.embeddings] == [4, 41]  # + a row for unseen (-1)
    assert [e.embedding_dim for e in net.embeddings] == [2, 16]
    x = torch.tensor([[0.5, -1.0, 0.2, 2.0, 39.0], [0.1, 0.3, 0.0, -1.0, -1.0]])
    assert net.eval()(x).shape == (2, 2)
    assert net.body[0].in_features == 3 + 2 + 16


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (784,), (5,)])
def test_image_nets_take_images_and_flat_rows(shape):
    x = torch.rand(4, *shape)
    for net in (LeNet(shape, 10), ResNet(shape, 10, widths=(8, 16), blocks=1)):
        assert net.eval()(x).shape == (4, 10)


def test_resnet_blocks_shortcuts_and_switches():
    net = ResNet((1, 28, 28), 10, widths=(32, 64, 128), blocks=(2, 2, 2))
    blocks = [m for m in net.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 6
    # a 1x1 projection where the width / resolution changes, the identity elsewhere
    projections = [isinstance(b.shortcut, torch.nn.Sequential) for b in blocks]
    assert projections == [False, False, True, False, True, False]
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    plain = ResNet((1, 28, 28), 10, widths=(32, 64, 128), batchnorm=False, residual=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert all(b.conv1.bias is not None for b in plain.modules() if isinstance(b, BasicBlock))
    # with its convolutions zeroed a residual block passes relu(x) through; a plain one, zero
    x = torch.randn(2, 8, 6, 6)
    for residual, expected in ((True, torch.relu(x)), (False, torch.zeros_like(x))):
        block = BasicBlock(8, 8, 1, batchnorm=False, residual=residual)
        for p in block.parameters():
            torch.nn.init.zeros_(p)
        torch.testing.assert_close(block(x), expected)


def _frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "c": pd.Categorical(rng.choice(list("uvw"), n))})
    y = ((X["a"] > 0) ^ (X["c"] == "u")).astype(int).to_numpy()
    return X, y


def test_registry_splits_parameters_between_net_design_and_recipe():
    model = make_estimator(
        "torch-resnet",
        "binary",
        {"widths": [8], "blocks": 1, "batchnorm": False, "residual": False, "augment": False,
         "epochs": 2, "scaler": "none"},
        random_state=5,
        n_jobs=1,
    )  # fmt: skip
    est = model.estimator
    assert est.module == "resnet" and est.augment is False and est.random_state == 5
    assert est.module_params == {"widths": (8,), "blocks": 1, "batchnorm": False, "residual": False}
    X, y = _frame()
    fitted = model.fit(X, y, eval_set=(X[:50], y[:50]))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fitted.model_.module_.modules())
    assert len(fitted.history_) == fitted.model_.n_iter_ and fitted.best_iteration_ is not None
    with pytest.raises(ConfigError, match="torch-resnet has no parameter 'width'"):
        make_estimator("torch-resnet", "binary", {"width": 3})
    with pytest.raises(ConfigError, match="torch-cnn has no parameter 'embed'"):
        make_estimator("torch-cnn", "binary", {"embed": True})


def test_a_missing_gpu_is_refused_before_any_fit(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="device 'cuda' requested"):
        make_estimator("torch-cnn", "multiclass", {"device": "cuda"})


def test_tabular_mlp_embeds_categories_and_learns_their_interaction():
    X, y = _frame(600)
    model = make_estimator("torch-mlp", "binary", {"epochs": 25, "lr": 0.01}, n_jobs=1)
    model.fit(X[:400], y[:400])
    assert [e.num_embeddings for e in model.model_.module_.embeddings] == [4]
    assert np.mean(model.predict(X[400:]) == y[400:]) > 0.9
    # embed=False: one-hot columns instead, no embedding tables
    onehot = make_estimator("torch-mlp", "binary", {"epochs": 2, "embed": False}, n_jobs=1)
    assert len(onehot.fit(X, y).model_.module_.embeddings) == 0
