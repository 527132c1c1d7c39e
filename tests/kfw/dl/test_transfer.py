"""Fine-tuning helpers: a frozen body stays the pretrained body, the rates land per layer group."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from kfw.dl.checkpoint import save_state
from kfw.dl.estimator import TorchClassifier, net_factory
from kfw.dl.transfer import Transfer, body_state, transfer_net
from kfw.dl.weights import write_safetensors
from kfw.errors import ConfigError

SHAPE = (1, 8, 8)
NET = {"widths": [4, 8], "blocks": 1}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    torch.manual_seed(1)
    net = net_factory("resnet")(input_shape=SHAPE, n_outputs=3, **NET)
    path = tmp_path / "pre.pt"
    save_state(net, path)
    return path


def _data(n: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((n, 64), dtype=np.float32), np.arange(n) % 4


def _fit(weights: Path, trainable: str, lr_decay: float = 1.0) -> TorchClassifier:
    X, y = _data()
    params = {"base_params": NET, "weights": str(weights), "trainable": trainable, "lr_decay": lr_decay}  # fmt: skip
    return TorchClassifier(
        module=transfer_net, module_params=params, input_shape=SHAPE, epochs=1, batch_size=16,
        lr=1e-2, schedule="none", weight_decay=0.0, early_stopping=False, n_jobs=1,
    ).fit(X, y)  # fmt: skip


def _body(state: dict) -> dict:
    return {k.removeprefix("net."): v for k, v in body_state(state).items()}


def test_the_body_is_loaded_and_the_head_is_new(weights: Path) -> None:
    pre = torch.load(weights, weights_only=True)
    net = transfer_net(SHAPE, 4, base_params=NET, weights=weights)
    own = net.net.state_dict()
    assert all(torch.equal(own[k], v) for k, v in body_state(pre).items())
    assert own["head.3.weight"].shape == (4, 8)  # four classes now, three before


@pytest.mark.parametrize(("trainable", "moved"), [("head", 1), ("last", 2)])
def test_a_frozen_body_is_unchanged_by_training(weights: Path, trainable: str, moved: int) -> None:
    pre = body_state(torch.load(weights, weights_only=True))
    after = _fit(weights, trainable).module_.net.state_dict()
    # the frozen groups: weights and batch-norm statistics exactly the pretrained ones
    frozen = ["stem."] + [f"stages.{i}." for i in range(2 - (moved - 1))]
    for k, v in pre.items():
        same = torch.equal(after[k], v)
        assert same == any(k.startswith(f) for f in frozen), k
    # the head trained
    assert not torch.equal(
        after["head.3.weight"],
        transfer_net(SHAPE, 4, base_params=NET).net.state_dict()["head.3.weight"],
    )


def test_discriminative_rates_land_in_the_param_groups(weights: Path) -> None:
    clf = _fit(weights, "all", lr_decay=0.5)
    module = clf.module_
    opt = clf._optimizer(module)
    lrs = [g["lr"] for g in opt.param_groups]
    # decay / no-decay pairs from the head down: head, block 2, block 1, stem
    assert lrs == pytest.approx([1e-2, 1e-2, 5e-3, 5e-3, 2.5e-3, 2.5e-3, 1.25e-3, 1.25e-3])
    head_params = {id(p) for p in module.net.head.parameters()}
    stem_params = {id(p) for p in module.net.stem.parameters()}
    assert {id(p) for g in opt.param_groups[:2] for p in g["params"]} == head_params
    assert {id(p) for g in opt.param_groups[-2:] for p in g["params"]} == stem_params
    # a probe's optimiser holds the head alone
    probe = _fit(weights, "head").module_
    held = {id(p) for g in clf._optimizer(probe).param_groups for p in g["params"]}
    assert held == {id(p) for p in probe.net.head.parameters()}


def test_a_plain_network_keeps_two_groups_at_the_base_rate() -> None:
    clf = TorchClassifier(module="resnet", module_params=NET, lr=0.02)
    module = net_factory("resnet")(input_shape=SHAPE, n_outputs=3, **NET)
    groups = clf._optimizer(module).param_groups
    assert [g["lr"] for g in groups] == [0.02, 0.02]
    assert [g["weight_decay"] for g in groups] == [clf.weight_decay, 0.0]


def test_bad_input(weights: Path, tmp_path: Path) -> None:
    wide = net_factory("resnet")(input_shape=SHAPE, n_outputs=3, widths=[4, 16], blocks=1)
    write_safetensors(wide.state_dict(), tmp_path / "wide.safetensors")
    with pytest.raises(ConfigError, match=r"stages.1.conv1.weight is 16x4x3x3 there, 8x4x3x3 here"):
        transfer_net(SHAPE, 4, base_params=NET, weights=tmp_path / "wide.safetensors")
    net = net_factory("resnet")(input_shape=SHAPE, n_outputs=3, **NET)
    with pytest.raises(ConfigError, match="unknown trainable 'body'"):
        Transfer(net, "body")
    with pytest.raises(ConfigError, match="lr_decay"):
        Transfer(net, "all", lr_decay=0.0)
    with pytest.raises(ConfigError, match="no stem"):
        Transfer(torch.nn.Linear(2, 2))
