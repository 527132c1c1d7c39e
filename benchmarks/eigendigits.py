"""Eigendigits: the scratch PCA on scikit-learn's 8x8 digits, drawn to a PNG.

Fits `scratch_models.pca.PCA` to `load_digits()` and draws the mean digit, the first eight
principal axes (red positive, blue negative) and the cumulative explained-variance curve.
Prints how far the components are from scikit-learn's (they should agree to ~1e-13).

    .venv/bin/python benchmarks/eigendigits.py [--out reports/eigendigits.png] [--solver full]
"""

import argparse
from pathlib import Path

import matplotlib
import numpy as np
from sklearn.datasets import load_digits

from scratch_models.pca import PCA

N_AXES = 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports/eigendigits.png"))
    parser.add_argument("--solver", choices=["full", "covariance_eigh"], default="full")
    args = parser.parse_args()

    matplotlib.use("Agg")  # headless: choose the backend before pyplot loads
    import matplotlib.pyplot as plt

    X = load_digits().data  # (1797, 64) pixel intensities 0..16
    model = PCA(svd_solver=args.solver).fit(X)

    from sklearn.decomposition import PCA as SkPCA  # the oracle, only for the printed check

    ref = SkPCA(svd_solver=args.solver).fit(X)
    gap = np.abs(model.components_[:N_AXES] - ref.components_[:N_AXES]).max()
    print(f"max |component - sklearn| over the first {N_AXES}: {gap:.2e}")

    fig = plt.figure(figsize=(12, 5.5), layout="constrained")
    grid = fig.add_gridspec(2, 7, width_ratios=[1, 1, 1, 1, 1, 0.15, 3])
    images = [("mean digit", model.mean_, "gray_r")] + [
        (f"PC{j + 1}  {model.explained_variance_ratio_[j]:.1%}", model.components_[j], "RdBu_r")
        for j in range(N_AXES)
    ]
    for t, (title, vector, cmap) in enumerate(images):
        ax = fig.add_subplot(grid[t // 5, t % 5])
        limit = np.abs(vector).max()
        vmin = 0 if cmap == "gray_r" else -limit
        ax.imshow(vector.reshape(8, 8), cmap=cmap, vmin=vmin, vmax=limit)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    ax = fig.add_subplot(grid[:, 6])
    cumulative = np.cumsum(model.explained_variance_ratio_)
    ax.plot(np.arange(1, len(cumulative) + 1), cumulative, marker=".")
    for level in (0.8, 0.9, 0.95):
        k = int(np.searchsorted(cumulative, level)) + 1
        ax.axhline(level, color="grey", lw=0.5)
        ax.annotate(f"{level:.0%}: {k} axes", (k, level), xytext=(k + 3, level - 0.05), fontsize=8)
    ax.set_xlabel("number of components")
    ax.set_ylabel("cumulative explained variance")
    ax.set_title("explained variance (digits, 64 pixels)")
    fig.suptitle(f"Eigendigits: scratch PCA ({args.solver}) on load_digits()")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(args.out)  # no half-written artifact
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
