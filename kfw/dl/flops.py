"""Model FLOPs utilisation: the FLOPs a transformer step needs against what the device can do.

MFU (Chowdhery et al., PaLM, 2022, appendix B) is the throughput achieved, in model FLOPs (the
FLOPs the model's arithmetic needs, not counting recomputation), divided by the device's peak.
For a decoder-only transformer of ``N`` parameters, ``L`` layers, ``H`` heads of size ``Q`` and
context ``T``, a training token costs

    6 N + 12 L H Q T

FLOPs: 2 per parameter per token in the forward pass and 4 in the backward, plus the attention
scores and their weighted sum (``Q K^T`` and ``A V``, 2 matmuls of ``T x Q`` per head, counted
over the whole context). ``N`` leaves out the position table (an addition, not a matmul) but
keeps the token embedding, which is also the output layer.

The peak is the device's dense peak for the precision in use:

- CUDA: from the device name (the vendors' data sheets, dense, no sparsity): H100/H200 SXM
  989 TFLOP/s in bf16, A100 312, ...; float32 runs count TF32's peak (torch's default matmul
  precision on those GPUs is "highest", so float32 MFU reads low: use bf16);
- CPU: threads x clock x FLOPs per cycle per core, the clock from ``/proc/cpuinfo``: AVX-512
  with two FMA units does 2 x 16 x 2 = 64 float32 FLOPs a cycle, AVX2 32; bf16 counts AMX's
  1,024 a cycle where the CPU has ``amx_bf16`` (Sapphire Rapids and later), else AVX-512
  BF16's 128.

``KFW_PEAK_FLOPS`` (FLOP/s) overrides the estimate for a device the table does not know or a
number the user has measured.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

# dense bf16 / TF32 peaks from the data sheets, FLOP/s, by a fragment of the device name
CUDA_PEAKS: dict[str, tuple[float, float]] = {
    "H200": (989e12, 494e12),
    "H100": (989e12, 494e12),  # SXM; the PCIe card is 756 / 378
    "A100": (312e12, 156e12),
    "L40S": (362e12, 183e12),
    "L4": (121e12, 60e12),
    "A10G": (70e12, 35e12),
    "A10": (125e12, 62.5e12),
    "4090": (165e12, 82.6e12),
    "3090": (71e12, 35.6e12),
    "V100": (125e12, 15.7e12),  # fp16 tensor cores; no bf16
    "T4": (65e12, 8.1e12),  # fp16 tensor cores; no bf16
}


def transformer_flops_per_token(
    n_params: int, n_layer: int, n_head: int, head_size: int, context: int
) -> float:
    """Training FLOPs per token: ``6 N + 12 L H Q T`` (PaLM's appendix B)."""
    return 6.0 * n_params + 12.0 * n_layer * n_head * head_size * context


def _cpu_flags_and_clock() -> tuple[set[str], float]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set(), 0.0
    found = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    flags = set(found.group(1).split()) if found else set()
    mhz = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M)]
    return flags, max(mhz, default=0.0) * 1e6


def peak_flops(device: str | torch.device, bf16: bool) -> tuple[float, str]:
    """The device's dense peak in FLOP/s for bf16 (else float32) and where the number came from.

    Returns ``(0.0, reason)`` when it cannot be told; MFU is then not shown.
    """
    env = os.environ.get("KFW_PEAK_FLOPS")
    if env:
        try:
            return float(env), "KFW_PEAK_FLOPS"
        except ValueError:
            return 0.0, f"KFW_PEAK_FLOPS={env!r} is not a number"
    dev = torch.device(device)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
        for fragment, (bf, tf32) in CUDA_PEAKS.items():
            if fragment in name:
                return (bf if bf16 else tf32), f"{name} data sheet, {'bf16' if bf16 else 'tf32'}"
        return 0.0, f"{name} is not in kfw's peak table (set KFW_PEAK_FLOPS)"
    flags, clock = _cpu_flags_and_clock()
    if not clock:
        return 0.0, "no CPU clock in /proc/cpuinfo (set KFW_PEAK_FLOPS)"
    if bf16:
        per_cycle = 1024 if "amx_bf16" in flags else 128 if "avx512_bf16" in flags else 0
        unit = "AMX bf16" if per_cycle == 1024 else "AVX-512 bf16"
    else:
        per_cycle = 64 if "avx512f" in flags else 32 if "avx2" in flags else 16
        unit = "AVX-512 FMA" if per_cycle == 64 else "AVX2 FMA" if per_cycle == 32 else "SSE"
    if not per_cycle:
        return 0.0, "this CPU has no bf16 instructions (set KFW_PEAK_FLOPS)"
    threads = torch.get_num_threads()
    return (
        threads * clock * per_cycle,
        f"{threads} cores x {clock / 1e9:.2f} GHz x {per_cycle} FLOPs/cycle ({unit})",
    )


def mfu(tokens_per_s: float, flops_per_token: float, peak: float) -> float:
    """Model FLOPs utilisation in [0, 1] (0 when the peak is unknown)."""
    return tokens_per_s * flops_per_token / peak if peak > 0 else 0.0
