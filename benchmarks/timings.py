"""The timings that used to be asserted in tests: how fast a W&B failure is noticed, how long a
stopped mirror costs the rest of a command, how fast BPE trains on Tiny Shakespeare.

Tests check behaviour (one warning, the offline fallback, no second child process); a busy
2-core machine makes any duration in a test fail by chance, so the durations live here, with
their targets, and print as a table with each measured/target ratio (<= 1.00 meets it).

    .venv/bin/python benchmarks/timings.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from kfw.pipeline.mirror import Mirror
from kfw.progress import Collect

SHARED = Path(__file__).resolve().parents[2] / "shared"
# targets, in seconds
TARGETS = {
    "unreachable W&B: the warning": 2.0,  # the TCP probe, before wandb starts
    "unreachable W&B: whole mirror, offline fallback included": 10.0,
    "mirror past its timeout (0.5 s): stopped": 2.5,
    "the next run of that command": 0.1,  # no child process at all
    "BPE, vocab 512, on Tiny Shakespeare (1 MB)": 30.0,
}


class _Timed(Collect):
    def __init__(self) -> None:
        super().__init__()
        self.first_warning: float | None = None

    def warning(self, message: str) -> None:
        super().warning(message)
        if self.first_warning is None:
            self.first_warning = time.perf_counter()


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "KFW_WANDB"))}
    return {**env, "NETRC": str(tmp / "no-netrc"), **extra}


def _run(tmp: Path) -> tuple[dict, Path]:
    folder = tmp / "runs" / "synth" / "20250101-000000-x-00000000"
    folder.mkdir(parents=True)
    record = {"id": folder.name, "competition": "synth", "label": "x", "kind": "model"}
    record.update(score=0.5, fold_scores=[])
    (folder / "run.json").write_text(json.dumps(record))
    return record, folder


def mirror_failures() -> dict[str, float]:
    out = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        record, folder = _run(tmp)
        broken = {"WANDB_MODE": "online", "WANDB_BASE_URL": "http://127.0.0.1:9"}
        mirror = Mirror(tmp, env=_env(tmp, WANDB_API_KEY="x" * 40, **broken))
        callback = _Timed()
        start = time.perf_counter()
        mirror(record, folder, callback)
        end = time.perf_counter()
        out["unreachable W&B: the warning"] = (callback.first_warning or end) - start
        out["unreachable W&B: whole mirror, offline fallback included"] = end - start
        shutil.rmtree(tmp / "wandb", ignore_errors=True)
        mirror = Mirror(tmp, env=_env(tmp, WANDB_MODE="offline"), timeout=0.5)
        start = time.perf_counter()
        mirror(record, folder, Collect())
        out["mirror past its timeout (0.5 s): stopped"] = time.perf_counter() - start
        start = time.perf_counter()
        mirror(record, folder, Collect())
        out["the next run of that command"] = time.perf_counter() - start
    return out


def bpe() -> dict[str, float]:
    corpus = SHARED / "corpora" / "tinyshakespeare.txt"
    if not corpus.is_file():
        return {}
    from kfw.dl.tokenize import BPETokenizer

    text = corpus.read_text(encoding="utf-8")
    start = time.perf_counter()
    BPETokenizer.train(text, vocab_size=512)
    return {"BPE, vocab 512, on Tiny Shakespeare (1 MB)": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    best: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, seconds in {**mirror_failures(), **bpe()}.items():
            best[name] = min(best.get(name, float("inf")), seconds)
    print(f"{'what':<58} {'best s':>8} {'target s':>9} {'ratio':>6}")
    for name, target in TARGETS.items():
        if name not in best:
            print(f"{name:<58} {'absent':>8} {target:>9.1f}")
            continue
        print(f"{name:<58} {best[name]:>8.2f} {target:>9.1f} {best[name] / target:>6.2f}")
    worst = max(best[n] / TARGETS[n] for n in best)
    print(f"worst ratio {worst:.2f} ({'all targets met' if worst <= 1 else 'a target missed'})")


if __name__ == "__main__":
    main()
