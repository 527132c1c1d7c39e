"""Train a small MLP on scikit-learn's two moons with the scratch autograd, plot its boundary.

    .venv/bin/python -m scratch_models.demos.moons --out docs/img/moons-decision-boundary.png

A [2, 32, 2] ReLU network, full-batch Adam on the cross-entropy; the accuracy is measured
on a held-out 30% split.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split

from scratch_models.nn import MLP, Adam, cross_entropy

DEFAULT_OUT = Path("docs/img/moons-decision-boundary.png")


@dataclass
class MoonsRun:
    """A trained network, its data split and its held-out accuracy."""

    model: MLP
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    accuracy: float
    losses: list[float]


def train_moons(
    n_samples: int = 1000,
    noise: float = 0.1,
    hidden: int = 32,
    steps: int = 300,
    lr: float = 0.05,
    seed: int = 0,
) -> MoonsRun:
    """Fit an MLP ``[2, hidden, 2]`` to make_moons with Adam; accuracy on a 30% test split."""
    X, y = make_moons(n_samples, noise=noise, random_state=seed)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, random_state=seed, stratify=y
    )
    model = MLP([2, hidden, 2], activation="relu", seed=seed)
    optimizer = Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = cross_entropy(model(X_train), y_train)  # logits (n_train, 2)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    accuracy = float(np.mean(model(X_test).data.argmax(axis=1) == y_test))
    return MoonsRun(model, X_train, y_train, X_test, y_test, accuracy, losses)


def plot_boundary(run: MoonsRun, out: Path) -> None:
    """Save the predicted class over a grid, with the training points, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X = np.vstack([run.X_train, run.X_test])
    (x0, y0), (x1, y1) = X.min(axis=0) - 0.5, X.max(axis=0) + 0.5
    gx, gy = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
    grid = np.column_stack([gx.ravel(), gy.ravel()])  # (90000, 2)
    logits = run.model(grid).data  # (90000, 2)
    margin = (logits[:, 1] - logits[:, 0]).reshape(gx.shape)

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    ax.contourf(gx, gy, margin > 0, levels=[-0.5, 0.5, 1.5], colors=["#9ecae1", "#fdae6b"])
    ax.contour(gx, gy, margin, levels=[0.0], colors="k", linewidths=1)
    ax.scatter(*run.X_train.T, c=run.y_train, cmap="coolwarm", s=10, edgecolors="k", linewidths=0.3)
    hidden = run.model.layers[0].weight.shape[0]
    ax.set_title(f"MLP [2, {hidden}, 2] on make_moons: held-out accuracy {run.accuracy:.1%}")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main(argv: list[str] | None = None) -> float:
    """Train, plot, print and return the held-out accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="PNG to write")
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    run = train_moons(noise=args.noise, steps=args.steps, seed=args.seed)
    plot_boundary(run, args.out)
    print(f"held-out accuracy {run.accuracy:.4f}; decision boundary written to {args.out}")
    return run.accuracy


if __name__ == "__main__":
    main()
