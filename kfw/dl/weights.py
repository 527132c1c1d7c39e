"""Weights from elsewhere: a file's tensors, checked against a network before they are loaded.

A network starts from weights it did not train itself in two ways: an earlier kfw run (its
``model.pt``), or a file a user brings. :func:`read_state_dict` reads either kind of file:

- ``.pt`` / ``.pth`` / ``.bin``: a ``torch.save`` of a state dict, read with
  ``weights_only=True`` (tensors and plain containers, never arbitrary pickled code); a dict
  holding the state dict under ``"model"`` or ``"state_dict"`` (kfw's ``model.pt``, many
  training scripts' checkpoints) is unwrapped;
- ``.safetensors``: Hugging Face's format, parsed here without the ``safetensors`` package.
  The file is an 8-byte little-endian header length ``N``, ``N`` bytes of JSON (for each name:
  ``dtype``, ``shape``, ``data_offsets`` ``[begin, end)`` into the data that follows; an
  optional ``__metadata__`` of strings), then the raw little-endian bytes of every tensor.
  :func:`write_safetensors` writes the same layout.

:func:`check_compatible` compares a state dict with a network's own, key by key in the
network's order, and raises one :class:`~kfw.errors.ConfigError` line naming the first tensor
that is missing, extra or of another shape; :func:`load_weights` loads only after that check.
:func:`file_sha256` is the provenance a run records for a file it started from.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kfw import files
from kfw.errors import ConfigError, KfwError

# safetensors' dtype names (the format's spec) and torch's
DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
NAMES = {v: k for k, v in DTYPES.items()}
SAFETENSORS = ".safetensors"
MAX_HEADER = 100_000_000  # the reference implementation's limit on the JSON header


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB pieces."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# safetensors


def write_safetensors(
    state: Mapping[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> None:
    """Write ``state`` as a safetensors file (whole or not at all; tensors in name order)."""
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    blobs, offset = [], 0
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        if t.dtype not in NAMES:
            raise ConfigError(f"{name}: dtype {t.dtype} has no safetensors name")
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {
            "dtype": NAMES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data start 8-byte aligned, as the reference writes
    files.write_bytes(Path(path), struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; :class:`KfwError` naming the file when malformed."""
    path = Path(path)
    raw = path.read_bytes()

    def bad(why: str) -> KfwError:
        return KfwError(f"{path} is not a valid safetensors file ({why})")

    if len(raw) < 8:
        raise bad("shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > min(MAX_HEADER, len(raw) - 8):
        raise bad(f"header length {n} past the end of the file")
    try:
        header = json.loads(raw[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise bad("the header is not JSON") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    data = memoryview(raw)[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = DTYPES[info["dtype"]]
            shape = [int(s) for s in info["shape"]]
            begin, end = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise bad(f"tensor {name!r}: dtype, shape or data_offsets missing or unknown") from None
        size = torch.empty((), dtype=dtype).element_size()
        count = 1
        for s in shape:
            count *= s
        if not 0 <= begin <= end <= len(data) or end - begin != count * size:
            raise bad(f"tensor {name!r}: data_offsets {begin}..{end} do not hold shape {shape}")
        chunk = bytearray(data[begin:end])  # a copy: the tensor owns its memory
        flat = (
            torch.frombuffer(chunk, dtype=torch.uint8)
            if chunk
            else torch.empty(0, dtype=torch.uint8)
        )
        out[name] = flat.view(dtype).reshape(shape)  # bool: one byte each, as torch stores it
    return out


# ---------------------------------------------------------------------------------------------
# any weight file


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` file or a ``torch.save`` file (see the module).

    Raises
    ------
    KfwError
        The file is missing, unreadable, or holds no name -> tensor mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise KfwError(f"weights {path}: no such file")
    if path.suffix == SAFETENSORS:
        return read_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged or foreign file of any kind: one line naming it
        raise KfwError(
            f"weights {path} cannot be read as a torch state dict ({type(exc).__name__}); "
            f"a .pt state dict or a {SAFETENSORS} file"
        ) from None
    if isinstance(obj, dict):
        for wrapper in ("model", "state_dict"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if not (
        isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values())
    ):
        raise KfwError(f"weights {path} holds no state dict (a mapping of names to tensors)")
    return dict(obj)


def check_compatible(
    own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], source: str
) -> None:
    """Raise one :class:`ConfigError` line naming the first tensor where ``state`` differs.

    The network's tensors are visited in its own order: the first one absent from ``state`` or
    of another shape is named; then the first name ``state`` has and the network lacks.
    """
    for name, tensor in own.items():
        if name not in state:
            raise ConfigError(f"{source} is of another architecture: it has no tensor {name}")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ConfigError(
                f"{source} is of another architecture: {name} is "
                f"{_shape(state[name])} there, {_shape(tensor)} here"
            )
    extra = [name for name in state if name not in own]
    if extra:
        raise ConfigError(
            f"{source} is of another architecture: it has a tensor {extra[0]} this model lacks"
        )


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) or "a scalar"


def load_weights(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy ``state`` into ``module`` after :func:`check_compatible` (dtypes are converted)."""
    check_compatible(module.state_dict(), state, source)
    module.load_state_dict(dict(state))
