"""The fold loop spread over workers: wall time, speed-up and the scheduler's cost per task.

Runs ``kfw cv COMP`` (the whole roster, as a user runs it, W&B off) one after another with
single-threaded fits, then with ``--executor local:2`` (two worker processes) and with
``--executor dask://...`` on a two-worker ``distributed.LocalCluster`` started here, each in
its own ``KFW_HOME``; checks that every run's out-of-fold and test predictions are the
sequential run's to the byte; then times empty tasks through each executor to give the
overhead per task. Run it with nothing else busy on the machine:

    .venv/bin/python benchmarks/executor.py [--comp house-prices] [--tasks 400]

Target (issue 20): a speed-up of at least 1.6x on two cores for single-threaded fits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

TARGET = 1.6
KFW = str(Path(sys.executable).with_name("kfw"))


def _cv(comp: str, home: Path, executor: str | None, threads: int = 1) -> float:
    env = {
        **os.environ,
        "KFW_HOME": str(home),
        "KFW_THREADS": str(threads),
        "WANDB_MODE": "disabled",
    }
    command = [KFW, "cv", comp, "--no-wandb", *(["--executor", executor] if executor else [])]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    print(done.stdout.strip().splitlines()[-1], flush=True)
    return seconds


def _predictions(home: Path, comp: str) -> dict[str, bytes]:
    out = {}
    for run in sorted((home / "runs" / comp).glob("*-*")):
        record = json.loads((run / "run.json").read_text())
        if record["kind"] != "model":
            continue
        frames = [pd.read_parquet(run / name) for name in ("oof.parquet", "test.parquet")]
        out[record["label"]] = b"".join(f.to_numpy().tobytes() for f in frames)
    return out


def _noop(payload: object, item: int) -> int:
    return item


def overhead(executor, tasks: int) -> float:
    """Seconds per empty task, the executor's slots busy (throughput, not latency)."""
    shared = executor.share({"empty": True})
    list(executor.run(_noop, list(range(8)), shared))  # workers started and the package read
    started = time.perf_counter()
    list(executor.run(_noop, list(range(tasks)), shared))
    return (time.perf_counter() - started) / tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comp", default="house-prices")
    parser.add_argument("--tasks", type=int, default=400, help="empty tasks timed per executor")
    args = parser.parse_args()

    from distributed import LocalCluster

    from kfw.core.executor import DaskExecutor, ProcessExecutor
    from kfw.threads import cores

    rows = []
    with tempfile.TemporaryDirectory(prefix="kfw-executor-") as tmp:
        root = Path(tmp)
        # the data and folds once, outside the timings (every home copies them)
        seconds = {"local (sequential)": _cv(args.comp, root / "seq", None)}
        seconds["local:2"] = _cv(args.comp, root / "local2", "local:2")
        with LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None,
        ) as cluster:  # fmt: skip
            address = cluster.scheduler_address.removeprefix("tcp://")
            seconds["dask LocalCluster, 2 workers"] = _cv(
                args.comp, root / "dask", f"dask://{address}"
            )
            with DaskExecutor(cluster.scheduler_address, root / "work") as executor:
                dask_overhead = overhead(executor, args.tasks)
        with ProcessExecutor(2, root / "work") as executor:
            local_overhead = overhead(executor, args.tasks)
        reference = _predictions(root / "seq", args.comp)
        same = {
            "local (sequential)": True,
            "local:2": _predictions(root / "local2", args.comp) == reference,
            "dask LocalCluster, 2 workers": _predictions(root / "dask", args.comp) == reference,
        }
        per_task = {"local:2": local_overhead, "dask LocalCluster, 2 workers": dask_overhead}
        base = seconds["local (sequential)"]
        for name, wall in seconds.items():
            rows.append((name, wall, base / wall, same[name], per_task.get(name), len(reference)))

    print(f"\nkfw cv {args.comp}, whole roster, one thread per fit, {cores()} cores\n")
    print("| executor | wall (s) | speed-up | predictions identical | overhead per task (ms) |")
    print("|---|---:|---:|---|---:|")
    for name, wall, speedup, identical, task, _ in rows:
        shown = f"{task * 1000:.2f}" if task is not None else "-"
        print(
            f"| {name} | {wall:.1f} | {speedup:.2f}x | {'yes' if identical else 'NO'} | {shown} |"
        )
    best = max(r[2] for r in rows[1:])
    worst = min(r[2] for r in rows[1:])
    print(
        f"\nspeed-up {worst:.2f}x to {best:.2f}x (target >= {TARGET}x): ratio target/worst "
        f"{TARGET / worst:.2f} (<= 1.00 meets it); models compared: {rows[0][5]}"
    )


if __name__ == "__main__":
    main()
