"""Weight files: safetensors written and read without the package, torch state dicts, and the
one-line architecture check."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest
import torch
from torch import nn

from kfw.dl.weights import (
    DTYPES,
    check_compatible,
    file_sha256,
    load_weights,
    read_safetensors,
    read_state_dict,
    write_safetensors,
)
from kfw.errors import ConfigError, KfwError


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def test_safetensors_round_trip_every_dtype(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    state = {
        f"t_{name}": (torch.randn(2, 3, generator=g) * 50).to(dtype)
        for name, dtype in DTYPES.items()
    }
    state["scalar"] = torch.tensor(3.5)
    state["empty"] = torch.zeros(0, 4)
    path = tmp_path / "w.safetensors"
    write_safetensors(state, path, metadata={"format": "pt"})
    back = read_safetensors(path)
    assert set(back) == set(state)
    for k, v in state.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape
        assert torch.equal(back[k], v), k


def test_safetensors_layout_is_the_specs(tmp_path: Path) -> None:
    # written by hand, as the format's README lays it out: u64 header size, JSON, raw bytes
    data = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
    path = tmp_path / "hand.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    assert torch.equal(read_state_dict(path)["w"], torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    # and ours reads back the same way
    write_safetensors({"w": torch.tensor([[1.0, 2.0], [3.0, 4.0]])}, tmp_path / "ours.safetensors")
    raw = (tmp_path / "ours.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0 and json.loads(raw[8 : 8 + n])["w"]["data_offsets"] == [0, 16]
    assert raw[8 + n :] == data


def _framed(header: bytes) -> bytes:
    return struct.pack("<Q", len(header)) + header


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"\x01", "shorter than"),
        (struct.pack("<Q", 1000) + b"{}", "past the end"),
        (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
        (struct.pack("<Q", 3) + b"{x}", "not JSON"),
        (
            _framed(b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}') + b"\0" * 8,
            "do not hold shape",
        ),
        (_framed(b'{"w":{"dtype":"Q9","shape":[],"data_offsets":[0,4]}}'), "missing or unknown"),
    ],
)
def test_a_malformed_safetensors_file_is_one_line(
    tmp_path: Path, raw: bytes, fragment: str
) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(raw)
    with pytest.raises(KfwError, match=fragment) as info:
        read_state_dict(path)
    assert "\n" not in str(info.value)


def test_torch_files_plain_or_wrapped(tmp_path: Path) -> None:
    state = _net().state_dict()
    for name, obj in [("plain.pt", state), ("kfw.pt", {"model": state, "config": {}}),
                      ("ckpt.pt", {"state_dict": state, "epoch": 3})]:  # fmt: skip
        torch.save(obj, tmp_path / name)
        back = read_state_dict(tmp_path / name)
        assert list(back) == list(state) and all(torch.equal(back[k], state[k]) for k in state)
    (tmp_path / "junk.pt").write_bytes(b"not a pickle")
    torch.save({"epoch": 3}, tmp_path / "nostate.pt")
    with pytest.raises(KfwError, match="cannot be read"):
        read_state_dict(tmp_path / "junk.pt")
    with pytest.raises(KfwError, match="holds no state dict"):
        read_state_dict(tmp_path / "nostate.pt")
    with pytest.raises(KfwError, match="no such file"):
        read_state_dict(tmp_path / "absent.pt")


def test_the_first_mismatching_tensor_is_named() -> None:
    own = _net().state_dict()
    wide = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Linear(5, 2)).state_dict()
    with pytest.raises(ConfigError, match=r"0\.weight is 5x3 there, 4x3 here"):
        check_compatible(own, wide, "weights w.pt")
    less = {k: v for k, v in own.items() if k != "1.running_mean"}
    with pytest.raises(ConfigError, match="no tensor 1.running_mean"):
        check_compatible(own, less, "weights w.pt")
    with pytest.raises(ConfigError, match="a tensor extra this model lacks"):
        check_compatible(own, {**own, "extra": torch.zeros(1)}, "weights w.pt")
    check_compatible(own, own, "weights w.pt")


def test_load_weights_copies_after_the_check(tmp_path: Path) -> None:
    torch.manual_seed(0)
    a, b = _net(), _net()
    write_safetensors(a.state_dict(), tmp_path / "a.safetensors")
    load_weights(b, read_state_dict(tmp_path / "a.safetensors"), "a")
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_sha256_of_a_file(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc" * 1_000_000)
    assert file_sha256(path) == hashlib.sha256(b"abc" * 1_000_000).hexdigest()
