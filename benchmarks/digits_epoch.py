"""Images per second of the default Digit Recognizer ResNet: TorchClassifier vs a plain loop.

The network and recipe are the default roster's (``competitions/digit-recognizer/
competition.toml``: ``torch-resnet`` with its params). Both sides train ``--epochs`` epochs on
the same rows from the same seed and then predict them; the plain side is the loop one writes
directly with torch (tensors on the device, batches indexed from a permutation, the same
augmentation, AdamW, OneCycle curve, label smoothing, channels_last, bf16 autocast on CUDA).
Runs alternate, ``--repeats`` times each; the best time of each side counts. Target: the
estimator's time / the plain loop's time <= 1.10, for training and for inference.

    .venv/bin/python benchmarks/digits_epoch.py --data ../shared/kaggle/digit-recognizer.zip \\
        [--rows 4000] [--device auto|cpu|cuda] [--threads 2] [--epochs 1] [--repeats 3]

``--data``: the Kaggle zip, a train.csv, or a KFW_HOME where ``kfw data import`` put it.
"""

from __future__ import annotations

import argparse
import os
import time
import tomllib
import zipfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from kfw.dl.augment import Augment
from kfw.dl.device import resolve_device
from kfw.dl.estimator import PREDICT_BATCH, TorchClassifier, lr_factor
from models.torch_nets import ResNet

TARGET_RATIO = 1.10
SPEC = Path(__file__).parents[1] / "competitions" / "digit-recognizer" / "competition.toml"


def load(path: Path, rows: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pixels / 255 (n, 784) float32 and labels, ``rows`` of them drawn at random."""
    if path.is_dir():
        path = path / "data" / "digit-recognizer" / "train.csv"
    if not path.exists():
        raise SystemExit(f"{path} does not exist (the Kaggle zip, train.csv or a KFW_HOME)")
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive, archive.open("train.csv") as fh:
            frame = pd.read_csv(fh)
    else:
        frame = pd.read_csv(path)
    y = frame.pop("label").to_numpy().copy()
    X = frame.to_numpy(np.float32) / np.float32(255)
    if rows and rows < len(y):
        keep = np.random.default_rng(seed).choice(len(y), rows, replace=False)
        X, y = X[keep], y[keep]
    return np.ascontiguousarray(X), y


def roster_params() -> dict:
    spec = tomllib.loads(SPEC.read_text())
    (entry,) = [m for m in spec["models"] if m["name"] == "torch-resnet"]
    return {k: tuple(v) if isinstance(v, list) else v for k, v in entry["params"].items()}


NET_KEYS = ("widths", "blocks", "dropout", "batchnorm", "residual")


def ours(X, y, params, device, threads, epochs, seed):
    recipe = {k: v for k, v in params.items() if k not in NET_KEYS}
    model = TorchClassifier(
        module="resnet",
        module_params={k: params[k] for k in NET_KEYS if k in params},
        **{**recipe, "epochs": epochs},
        device=device,
        n_jobs=threads,
        random_state=seed,
    )
    start = time.perf_counter()
    model.fit(X, y)
    _sync(device)
    train = time.perf_counter() - start
    start = time.perf_counter()
    model.predict_proba(X)
    return train, time.perf_counter() - start


def plain(X, y, params, device, threads, epochs, seed):
    """The same training written out directly with torch."""
    torch.set_num_threads(threads)
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    start = time.perf_counter()
    torch.manual_seed(seed)
    fmt = torch.channels_last  # as the estimator lays images out, on every device
    Xt = torch.as_tensor(X).to(dev).view(-1, 1, 28, 28).contiguous(memory_format=fmt)
    yt = torch.as_tensor(y).to(dev)
    net = ResNet((1, 28, 28), 10, **{k: params[k] for k in NET_KEYS if k in params})
    net = net.to(dev, memory_format=fmt)
    decay = [p for p in net.parameters() if p.ndim > 1]
    rest = [p for p in net.parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": params["weight_decay"]},
            {"params": rest, "weight_decay": 0.0},
        ],
        lr=params["lr"],
    )
    batch = params["batch_size"]
    steps = len(Xt) // batch + (1 if len(Xt) % batch > 1 else 0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_factor(params["schedule"], steps * epochs, params.get("warmup", 0.2))
    )
    aug = Augment(params["shift"], params["rotate"], params["zoom"], params.get("cutout", 0))
    order_gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator(device=dev).manual_seed(seed + 1)
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(Xt), generator=order_gen).to(dev)
        for i in range(steps):
            rows = order[i * batch : (i + 1) * batch]
            xb = aug(Xt[rows], aug_gen)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
                out = net(xb)
            loss = F.cross_entropy(out.float(), yt[rows], label_smoothing=params["label_smoothing"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    _sync(device)
    train = time.perf_counter() - start
    start = time.perf_counter()  # from the NumPy rows, as the estimator's predict starts
    net.eval()
    Xp = torch.as_tensor(X).to(dev).view(-1, 1, 28, 28).contiguous(memory_format=fmt)
    with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
        parts = [
            net(Xp[i : i + PREDICT_BATCH]).float().softmax(1)
            for i in range(0, len(Xp), PREDICT_BATCH)
        ]
        torch.cat(parts).double().cpu().numpy()
    return train, time.perf_counter() - start


def _sync(device: str) -> None:
    if resolve_device(device).type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/kaggle/digit-recognizer.zip"))
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    X, y = load(args.data, args.rows, args.seed)
    params = roster_params()
    dev = resolve_device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"{len(y)} images, {args.epochs} epoch(s), torch {torch.__version__}, {name}")
    print(f"recipe: {params}")
    sides = {"TorchClassifier": ours, "plain torch loop": plain}
    best = {k: [np.inf, np.inf] for k in sides}
    for r in range(args.repeats):
        for key in list(sides) if r % 2 == 0 else list(sides)[::-1]:  # alternate who goes first
            t, p = sides[key](X, y, params, args.device, args.threads, args.epochs, args.seed)
            best[key] = [min(best[key][0], t), min(best[key][1], p)]
    n_train = len(y) * args.epochs
    print(f"{'':18s} {'train img/s':>12s} {'predict img/s':>14s}")
    for key, (t, p) in best.items():
        print(f"{key:18s} {n_train / t:12.1f} {len(y) / p:14.1f}")
    (t0, p0), (t1, p1) = best["TorchClassifier"], best["plain torch loop"]
    ok = lambda r: "ok" if r <= TARGET_RATIO else "ABOVE TARGET"  # noqa: E731
    print(f"ratio (time ours / plain): train {t0 / t1:.3f} ({ok(t0 / t1)}), "
          f"predict {p0 / p1:.3f} ({ok(p0 / p1)}); target <= {TARGET_RATIO}")  # fmt: skip


if __name__ == "__main__":
    main()
