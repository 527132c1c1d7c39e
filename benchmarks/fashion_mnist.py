"""Fashion-MNIST with the Digit Recognizer's ``torch-resnet`` recipe: test accuracy against 94%.

The official files (Zalando's 60,000 train / 10,000 test 28x28 grey images, IDX, gzip) come
with Debian's ``dataset-fashion-mnist`` package, installed at ``/usr/share/datasets/fashion-mnist``
(or unpacked anywhere with ``apt-get download dataset-fashion-mnist && dpkg -x *.deb DIR``).
The network and its training recipe are the ``torch-resnet`` entry of
``competitions/digit-recognizer/competition.toml``, built by the same registry factory as in
``kfw cv`` and trained through :class:`kfw.dl.estimator.TorchClassifier` on pixels / 255
(float32), as the competition's features give them. 5,000 stratified training images are held
out for early stopping and best-epoch selection; the other 55,000 train; the official 10,000
test images are scored once, at the end. For scale, the dataset's README lists two
convolutions with pooling at 91.6% and a ResNet-18 at 94.9%.

    PYTHONPATH=. python benchmarks/fashion_mnist.py [--data DIR] [--epochs N] [--device auto]
        [--rows N] [--seed 0] [--json PATH]

``--rows`` subsamples the training (and test) images for a smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as kfw runs them (see kfw.core.registry)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

import numpy as np

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
TARGET = 0.94
HOLDOUT = 5_000
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")  # fmt: skip


def roster_params() -> dict:
    """The ``torch-resnet`` parameters of the Digit Recognizer roster."""
    from kfw.core.config import builtin_competitions_dir, load_competition

    spec = load_competition("digit-recognizer", builtin_competitions_dir().parent)
    (entry,) = [m for m in spec.models if m.name == "torch-resnet"]
    return dict(entry.params)


def _subsample(x: np.ndarray, y: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    if n >= len(y):
        return x, y
    x, _, y, _ = train_test_split(x, y, train_size=n, stratify=y, random_state=seed)
    return x, y


class EpochPrinter:
    """Prints the estimator's per-epoch metrics (a :class:`kfw.progress.Callback`)."""

    def __getattr__(self, name: str):  # every other event: nothing to show
        return lambda *args, **kwargs: None

    def log(self, metrics: dict, step: int | None = None) -> None:
        shown = ", ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
        )
        print(f"  epoch {step}: {shown}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEBIAN_DIR, help="folder of the 4 IDX files")
    parser.add_argument("--epochs", type=int, default=None, help="default: the roster's")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--rows", type=int, default=None, help="subsample (smoke test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    args = parser.parse_args()

    import torch

    from kfw.core.registry import make_estimator
    from kfw.dl.device import resolve_device
    from kfw.dl.idx import load_idx_dir
    from kfw.errors import KfwError

    try:
        x_train, y_train, x_test, y_test = load_idx_dir(args.data)
        device = resolve_device(args.device)
    except KfwError as exc:
        sys.exit(f"fashion_mnist: {exc}")
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    # pixels / 255 as float32, flat, as the Digit Recognizer features give them: (n, 784)
    x_train = x_train.reshape(len(x_train), -1).astype(np.float32) / 255
    x_test = x_test.reshape(len(x_test), -1).astype(np.float32) / 255
    y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
    if args.rows:
        x_train, y_train = _subsample(x_train, y_train, args.rows, args.seed)
        x_test, y_test = _subsample(x_test, y_test, args.rows, args.seed)
    from sklearn.model_selection import train_test_split

    holdout = min(HOLDOUT, len(y_train) // 5)
    x_fit, x_val, y_fit, y_val = train_test_split(
        x_train, y_train, test_size=holdout, stratify=y_train, random_state=args.seed
    )
    params = roster_params()
    if args.epochs is not None:
        params["epochs"] = args.epochs
        params["patience"] = max(args.epochs, params.get("patience", 0))
    params["device"] = args.device
    # the registry's factory splits the flat roster dict into network and recipe, as kfw cv does
    net = make_estimator(
        "torch-resnet", "multiclass", params, random_state=args.seed, n_jobs=threads
    ).estimator
    print(
        f"Fashion-MNIST from {args.data}: {len(y_fit)} train, {len(y_val)} held out, "
        f"{len(y_test)} test; torch-resnet {params}; {device}",
        flush=True,
    )
    start = time.perf_counter()
    net.fit(x_fit, y_fit, eval_set=(x_val, y_val), callback=EpochPrinter())
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    pred = net.predict(x_test)
    predict_s = time.perf_counter() - start
    accuracy = float(np.mean(pred == y_test))
    per_class = {c: float(np.mean(pred[y_test == k] == k)) for k, c in enumerate(CLASSES)}
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu"
    )
    result = {
        "accuracy": accuracy,
        "target": TARGET,
        "gap": accuracy - TARGET,
        "train_images": len(y_fit),
        "holdout_images": len(y_val),
        "test_images": len(y_test),
        "epochs": params["epochs"],
        "best_epoch": getattr(net, "best_iteration_", None),
        "fit_seconds": fit_s,
        "predict_seconds": predict_s,
        "device": f"{device.type} ({name}, {threads} threads)"
        if device.type == "cpu"
        else f"cuda ({name})",
        "torch": torch.__version__,
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
        "per_class_accuracy": per_class,
        "data": str(args.data),
        "rows": args.rows,
    }
    print()
    print("| test accuracy | target | gap | fit s | predict s | best epoch | device |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    print(
        f"| {accuracy:.4f} | {TARGET:.2f} | {accuracy - TARGET:+.4f} | {fit_s:.1f} | "
        f"{predict_s:.1f} | {result['best_epoch']} | {result['device']} |"
    )
    verdict = "meets" if accuracy >= TARGET else "misses"
    print(f"\n{verdict} the {TARGET:.0%} target by {abs(accuracy - TARGET) * 100:.2f} points")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
