"""The hand-written NumPy MLP against the same network in PyTorch: accuracy and epoch time.

(a) Quality: k-fold CV accuracy on Kaggle's Digit Recognizer train.csv (pixels / 255,
float32), on kfw's folds of the competition (stratified, 5 folds, seed 42). Both models are
784-512-256-10 with batch norm, ReLU and dropout, He-normal weights, Adam with L2 on the
weights only, a per-step cosine learning rate from ``--lr`` to 0, the same epochs and batch
size, and a fresh shuffle every epoch. Targets: ours >= 98% and within 0.3 points of torch.

(b) Speed: one training epoch over all 42,000 x 784 rows, batch 128, the same thread count
for both (``torch.set_num_threads``; threadpoolctl for NumPy's BLAS), best of ``--repeats``,
runs alternating. Target: ours <= 1.5x torch.

    .venv/bin/python benchmarks/mlp_vs_torch.py --data KFW_HOME_or_train.csv \\
        [--folds 5] [--epochs 25] [--threads 1] [--repeats 3] [--skip-quality] [--skip-speed]

The data come in with ``kfw data import digit-recognizer digit-recognizer.zip``.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as kfw runs them (see kfw.core.registry)

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from kfw.core.folds import FoldScheme, assign_folds
from scratch_models.mlp import EPS_BN, MOMENTUM_BN, MLPClassifier, cosine_lr

HIDDEN = (512, 256)
TARGET_ACCURACY, TARGET_GAP, TARGET_RATIO = 0.98, 0.3, 1.5


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Pixels / 255 as float32 (n, 784) and labels, from train.csv or a KFW_HOME."""
    if path.is_dir():
        path = path / "data" / "digit-recognizer" / "train.csv"
    if not path.is_file():
        raise SystemExit(
            f"{path} does not exist: run `kfw data import digit-recognizer ZIP` into a KFW_HOME"
        )
    frame = pd.read_csv(path)
    y = frame.pop("label").to_numpy().copy()  # pandas hands out a read-only view
    return frame.to_numpy(np.float32) / np.float32(255.0), y


def torch_net(n_features: int, n_classes: int, dropout: float) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    for fan_in, fan_out in zip((n_features, *HIDDEN[:-1]), HIDDEN, strict=True):
        layers += [
            torch.nn.Linear(fan_in, fan_out, bias=False),  # batch norm's beta is the bias
            torch.nn.BatchNorm1d(fan_out, eps=EPS_BN, momentum=MOMENTUM_BN),
            torch.nn.ReLU(),
            torch.nn.Dropout(dropout),
        ]
    net = torch.nn.Sequential(*layers, torch.nn.Linear(HIDDEN[-1], n_classes))
    for module in net:
        if isinstance(module, torch.nn.Linear):  # He normal, N(0, 2 / fan_in), as ours
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
    return net


def fit_torch(X, y, args, seed: int) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    net = torch_net(X.shape[1], int(y.max()) + 1, args.dropout).train()
    weights = [m.weight for m in net if isinstance(m, torch.nn.Linear)]
    others = [p for p in net.parameters() if all(p is not w for w in weights)]
    opt = torch.optim.Adam(  # coupled L2 on the weights only: ours adds alpha W to the gradient
        [{"params": weights, "weight_decay": args.alpha}, {"params": others, "weight_decay": 0}],
        lr=args.lr,
    )
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    total, step = args.epochs * math.ceil(len(X) / args.batch), 0
    for _ in range(args.epochs):
        order = torch.randperm(len(X))
        for start in range(0, len(X), args.batch):
            rows = order[start : start + args.batch]
            step += 1
            for group in opt.param_groups:
                group["lr"] = cosine_lr(args.lr, step, total)
            loss = torch.nn.functional.cross_entropy(net(Xt[rows]), yt[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()


def predict_torch(net, X) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(X)).argmax(dim=1).numpy()


def fit_ours(X, y, args, seed: int) -> MLPClassifier:
    model = MLPClassifier(
        HIDDEN,
        alpha=args.alpha,
        batch_size=args.batch,
        learning_rate_init=args.lr,
        max_iter=args.epochs,
        dropout=args.dropout,
        random_state=seed,
    )
    return model.fit(X, y)


def quality(X, y, args) -> None:
    scheme = FoldScheme(scheme="stratified", n_splits=5, seed=42)
    fold = assign_folds(scheme, len(y), y, None, None, "multiclass")[0][:, 0]  # kfw's folds
    print(
        f"quality: {args.folds} of 5 folds (kfw's, stratified, seed 42), {args.epochs} epochs, "
        f"batch {args.batch}, lr {args.lr} cosine, dropout {args.dropout}, alpha {args.alpha}, "
        f"threads {args.threads}"
    )
    print(f"{'fold':>4}  {'ours':>8}  {'torch':>8}  {'ours s':>7}  {'torch s':>7}")
    rows = []
    for k in range(args.folds):
        train, valid = fold != k, fold == k
        with threadpool_limits(args.threads):
            start = time.perf_counter()
            ours = fit_ours(X[train], y[train], args, seed=k)
            ours_acc = float(np.mean(ours.predict(X[valid]) == y[valid]))
            ours_s = time.perf_counter() - start
        start = time.perf_counter()
        net = fit_torch(X[train], y[train], args, seed=k)
        torch_acc = float(np.mean(predict_torch(net, X[valid]) == y[valid]))
        torch_s = time.perf_counter() - start
        rows.append((ours_acc, torch_acc, ours_s, torch_s))
        print(
            f"{k:>4}  {ours_acc:8.4%}  {torch_acc:8.4%}  {ours_s:7.1f}  {torch_s:7.1f}", flush=True
        )
    ours_mean, torch_mean = (float(np.mean([r[i] for r in rows])) for i in (0, 1))
    gap = 100 * (ours_mean - torch_mean)
    print(f"mean  {ours_mean:8.4%}  {torch_mean:8.4%}")
    print(
        f"difference ours - torch: {gap:+.2f} points "
        f"(targets: ours >= {TARGET_ACCURACY:.0%}: {'met' if ours_mean >= TARGET_ACCURACY else 'MISSED'}; "
        f"|difference| <= {TARGET_GAP}: {'met' if abs(gap) <= TARGET_GAP else 'MISSED'})"
    )


def speed(X, y, args) -> None:
    one = argparse.Namespace(**{**vars(args), "epochs": 1})
    ours_times, torch_times = [], []
    with threadpool_limits(args.threads):  # warm up: first-call costs are not an epoch's
        fit_ours(X[:512], y[:512], one, seed=0)
    fit_torch(X[:512], y[:512], one, seed=0)
    for rep in range(args.repeats):
        with threadpool_limits(args.threads):
            start = time.perf_counter()
            fit_ours(X, y, one, seed=rep)
            ours_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        fit_torch(X, y, one, seed=rep)
        torch_times.append(time.perf_counter() - start)
    ours_s, torch_s = min(ours_times), min(torch_times)
    ratio = ours_s / torch_s
    print(
        f"speed: one epoch, {len(X):,} x {X.shape[1]}, {X.shape[1]}-{'-'.join(map(str, HIDDEN))}-10, "
        f"batch {args.batch}, float32, threads {args.threads}, best of {args.repeats}"
    )
    print(f"  ours  {ours_s:6.2f} s   (all: {', '.join(f'{t:.2f}' for t in ours_times)})")
    print(f"  torch {torch_s:6.2f} s   (all: {', '.join(f'{t:.2f}' for t in torch_times)})")
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
    print(f"  ratio ours / torch = {ratio:.2f}  (target <= {TARGET_RATIO}: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="KFW_HOME or train.csv")
    parser.add_argument("--folds", type=int, default=5, help="how many of the 5 folds to run")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=0, help="use the first ROWS rows (0: all)")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.folds <= 5:
        parser.error("--folds must be 1..5")
    torch.set_num_threads(args.threads)
    X, y = load(args.data)
    if args.rows:
        X, y = X[: args.rows], y[: args.rows]
    if not args.skip_speed:
        speed(X, y, args)
    if not args.skip_quality:
        quality(X, y, args)


if __name__ == "__main__":
    main()
