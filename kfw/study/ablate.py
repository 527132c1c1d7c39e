"""The ablation: what does each component of a model buy, measured with seeds and intervals?

``kfw ablate COMP --model NAME --toggle augment,batchnorm,residual`` runs the base
configuration and each toggle switched (one at a time, or every combination with
``factorial``) on the competition's persisted folds, with several seeds. Every variant x seed
goes through :func:`kfw.pipeline.runs.run_model`, so it is an ordinary run in the store
(``ablate-<model>-<variant>-s<seed>``) with its per-fold scores, and an interrupted ablation
resumes: a finished variant x seed is found in the store and not refitted, an interrupted one
resumes from its last finished fold.

The comparison is paired. A variant and the base see the same training rows in each fold and
start from the same seed, so each (seed, fold) gives one difference ``d = variant - base``;
the table reports ``mean(d) +- t(0.975, n-1) * sd(d) / sqrt(n)``. The folds of one seed share
most of their training rows, so the n differences are not independent and the interval is, if
anything, a little narrow; a difference whose interval clearly excludes zero is real.

Outputs (``runs/<comp>/ablations/<id>/``, written to a staging folder and renamed):
``ablation.md`` (the table and the command), ``ablation.json`` (the table, every per-fold
score, the run ids) and ``ablation.png`` (each variant's difference from the base with its
interval). The runs of one ablation share a W&B group, ``ablate-<id>``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import shlex
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kfw import files
from kfw.core.config import ModelSpec
from kfw.core.folds import Folds, Split
from kfw.core.registry import make_estimator
from kfw.core.runstore import config_key
from kfw.errors import ConfigError
from kfw.pipeline.context import Context
from kfw.pipeline.runs import estimator_params, run_model
from kfw.progress import NULL, Callback
from kfw.threads import default_threads

LEVEL = 0.95  # the confidence level of the paired interval
BASE = "base"


@dataclass(frozen=True)
class FirstFolds(Folds):
    """The first ``keep`` folds of each repeat of a fold file (``--folds K``, to save time).

    The training parts are those of the full file (the other folds' rows are trained on,
    never validated), so a score here is a score of the full file's folds. The hash says
    which subset it is, so stacking never mixes these runs with full ones.
    """

    keep: int = 0

    @property
    def n_fits(self) -> int:
        return self.keep * self.scheme.n_repeats

    def splits(self) -> Iterator[Split]:
        for split in super().splits():
            if split.fold < self.keep:
                yield split


def first_folds(folds: Folds, k: int | None) -> Folds:
    """``folds`` restricted to its first ``k`` folds (all of them when ``k`` is None or all)."""
    n = folds.scheme.n_splits
    if k is None or k == n:
        return folds
    if not 1 <= k <= n:
        raise ConfigError(f"--folds must lie in 1..{n} (the fold file has {n} folds), got {k}")
    return FirstFolds(
        folds.scheme, folds.ids, folds.assignment, folds.order, f"{folds.hash}-first{k}",
        folds.path, folds.groups, keep=k,
    )  # fmt: skip


@dataclass(frozen=True)
class Variant:
    """One configuration: the base with the toggles in ``switched`` flipped."""

    name: str
    switched: tuple[str, ...]
    params: dict[str, Any]


def boolean_params(estimator: Any) -> dict[str, bool]:
    """The boolean parameters of an estimator, by their bare names.

    A wrapped estimator's (``estimator__batch_norm``), a network's parameter dict
    (``module_params``) and, for a torch network named by ``module``, the defaults of its
    constructor (``batchnorm=True`` even when the roster leaves it unset).
    """
    import inspect

    params = estimator.get_params(deep=True)
    out: dict[str, bool] = {}
    for key, value in params.items():
        name = key.rsplit("__", 1)[-1]
        if isinstance(value, bool):
            out.setdefault(name, value)
        elif isinstance(value, dict):
            out.update({k: v for k, v in value.items() if isinstance(v, bool) and k not in out})
    for key, value in params.items():
        if key.rsplit("__", 1)[-1] == "module" and f"{key}_params" in params:
            from kfw.dl.estimator import net_factory

            for p in inspect.signature(net_factory(value)).parameters.values():
                if isinstance(p.default, bool):
                    out.setdefault(p.name, p.default)
    return out


def variants(
    base_params: dict[str, Any], flags: dict[str, bool], toggles: list[str], factorial: bool
) -> list[Variant]:
    """The base, then each toggle switched alone (or every combination of them).

    A toggle on in the base is switched off (``no-augment``); one off in the base is switched
    on (``with-cutout``).
    """
    sets = (
        [c for r in range(1, len(toggles) + 1) for c in itertools.combinations(toggles, r)]
        if factorial
        else [(t,) for t in toggles]
    )
    out = [Variant(BASE, (), dict(base_params))]
    for switched in sets:
        name = "+".join(f"{'no' if flags[t] else 'with'}-{t}" for t in switched)
        out.append(Variant(name, switched, {**base_params, **{t: not flags[t] for t in switched}}))
    return out


def paired_interval(diffs: np.ndarray, level: float = LEVEL) -> tuple[float, float, float]:
    """Mean of paired differences and its t interval: ``(mean, low, high)``.

    ``mean(d) -+ t(1 - (1 - level) / 2, n - 1) * sd(d) / sqrt(n)`` with the sample standard
    deviation; with one pair the interval is undefined (NaN).
    """
    from scipy.stats import t

    d = np.asarray(diffs, dtype=float)
    mean = float(d.mean())
    if len(d) < 2:
        return mean, float("nan"), float("nan")
    half = float(t.ppf(1 - (1 - level) / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
    return mean, mean - half, mean + half


@dataclass
class Row:
    """One variant of the ablation table."""

    variant: str
    switched: list[str]
    mean: float  # over seeds x folds
    std: float  # sample standard deviation over seeds x folds
    n: int  # (seed, fold) scores
    diff: float  # mean paired difference from the base
    ci_low: float
    ci_high: float
    seconds: float  # mean CV time of one seed's run
    runs: list[str]

    def verdict(self, greater_is_better: bool) -> str:
        if self.variant == BASE:
            return ""
        if not (self.ci_low > 0 or self.ci_high < 0):  # NaN (one pair) lands here too
            return "no clear difference"
        return "better" if (self.diff > 0) == greater_is_better else "worse"


@dataclass
class Ablation:
    """A finished ablation: its table, where it was written and its runs."""

    id: str
    folder: Path
    rows: list[Row]
    data: dict[str, Any]


def fold_scores(record: dict[str, Any]) -> dict[tuple[int, int, int], float]:
    """``(seed, repeat, fold) -> score`` of one run: the pairing key of the ablation."""
    return {
        (record["seed"], f["repeat"], f["fold"]): float(f["score"]) for f in record["fold_scores"]
    }


def summarise(
    variants_runs: dict[str, list[dict[str, Any]]], switched: dict[str, list[str]]
) -> list[Row]:
    """The table from the runs of each variant (the base first): paired by seed and fold."""
    base = {}
    for r in variants_runs[BASE]:
        base.update(fold_scores(r))
    rows = []
    for name, records in variants_runs.items():
        scores: dict[tuple[int, int, int], float] = {}
        for r in records:
            scores.update(fold_scores(r))
        keys = sorted(scores)
        values = np.array([scores[k] for k in keys])
        diff, low, high = (
            (0.0, float("nan"), float("nan"))
            if name == BASE
            else paired_interval(np.array([scores[k] - base[k] for k in keys]))
        )
        rows.append(
            Row(
                name,
                switched[name],
                float(values.mean()),
                float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                len(values),
                diff,
                low,
                high,
                float(np.mean([r["seconds"] for r in records])),
                [r["id"] for r in records],
            )
        )
    return rows


def _comparable(record: dict[str, Any], expected: dict[str, Any]) -> bool:
    return all(record.get(k) == v for k, v in expected.items())


def _json_ready(value: Any) -> Any:
    """What ``value`` becomes once written to and read from ``run.json`` (tuples -> lists)."""
    return json.loads(files.dumps(value))


def command(
    slug: str,
    model: str,
    toggles: list[str],
    seeds: int,
    k: int | None,
    factorial: bool,
    overrides: dict[str, Any],
) -> str:
    """The ``kfw ablate`` command line that runs (or resumes) this ablation."""
    parts = ["kfw", "ablate", slug, "--model", model, "--toggle", ",".join(toggles)]
    parts += ["--seeds", str(seeds)]
    if k is not None:
        parts += ["--folds", str(k)]
    if factorial:
        parts.append("--factorial")
    for key, value in overrides.items():
        parts += ["-p", f"{key}={json.dumps(value)}"]
    return " ".join(shlex.quote(p) for p in parts)


def resolve(
    spec: Any, model: str, toggles: list[str], overrides: dict[str, Any] | None = None
) -> tuple[ModelSpec, dict[str, Any], dict[str, bool]]:
    """The base (roster entry or bare model, plus overrides) and its boolean parameters.

    Cheap (no data is read): the CLI calls it first, so a typo fails at once.

    Raises
    ------
    ConfigError
        No toggle, a repeated one, or one that is not a boolean parameter of the model.
    """

    if not toggles:
        raise ConfigError("--toggle names no parameter (e.g. --toggle augment,batchnorm)")
    if len(set(toggles)) != len(toggles):
        raise ConfigError(f"--toggle repeats a parameter: {','.join(toggles)}")
    member = spec.model(model)
    base_params = {**member.params, **(overrides or {})}
    flags = boolean_params(make_estimator(member.name, spec.task, base_params))
    unknown = [t for t in toggles if t not in flags]
    if unknown:
        raise ConfigError(
            f"--toggle {unknown[0]!r} is not a boolean parameter of model {member.name!r} "
            f"(its boolean parameters: {', '.join(sorted(flags)) or 'none'})"
        )
    return member, base_params, flags


def ablate(
    ctx: Context,
    model: str,
    toggles: list[str],
    *,
    seeds: int = 3,
    folds: int | None = None,
    factorial: bool = False,
    overrides: dict[str, Any] | None = None,
    threads: int | None = None,
    callback: Callback = NULL,
) -> Ablation:
    """Run (or resume) an ablation and write its table, JSON and chart.

    Parameters
    ----------
    ctx : kfw.pipeline.context.Context
        The competition, as :func:`kfw.pipeline.context.prepare` returns it.
    model : str
        A roster label (its parameters are the base) or a registered model name.
    toggles : list of str
        Boolean parameters of the model to switch, one at a time or (``factorial``) in every
        combination.
    seeds : int
        Seeds per variant: the competition's seed, then the next ``seeds - 1`` integers.
    folds : int, optional
        Use only the first ``folds`` folds of the fold file.
    overrides : dict, optional
        Parameters set in the base and every variant (``epochs=5``).

    Raises
    ------
    ConfigError
        A toggle that is not a boolean parameter of the model, a repeated toggle, fewer
        than one seed, or ``folds`` outside the fold file's range.
    """

    spec = ctx.spec
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    overrides = dict(overrides or {})
    member, base_params, flags = resolve(spec, model, toggles, overrides)
    seeded = make_estimator(member.name, spec.task, base_params).get_params(deep=True)
    if seeds > 1 and not any(k.rsplit("__", 1)[-1] == "random_state" for k in seeded):
        callback.warning(f"{member.name} takes no random_state: its seeds differ in name only")
    ctx = dataclasses.replace(ctx, folds=first_folds(ctx.folds, folds))
    threads = threads or default_threads()  # as run_model resolves it: part of the params
    configs = variants(base_params, flags, toggles, factorial)
    seed_list = [spec.seed + i for i in range(seeds)]
    for v in configs:  # a parameter a variant cannot take fails before any run
        make_estimator(member.name, spec.task, v.params)
    key = config_key(
        {
            "model": member.name, "params": base_params, "toggles": toggles,
            "factorial": factorial, "seeds": seed_list, "folds": ctx.folds.hash,
            "data": ctx.dataset.hash, "features": ctx.design.module_hash,
        }
    )  # fmt: skip
    ablation_id = f"{member.label}-{key}"
    group = f"ablate-{ablation_id}"
    cmd = command(spec.slug, model, toggles, seeds, folds, factorial, overrides)
    existing = ctx.store.records()
    results: dict[str, list[dict[str, Any]]] = {}
    total, done = len(configs) * len(seed_list), 0
    for v in configs:
        results[v.name] = []
        for seed in seed_list:
            done += 1
            label = f"ablate-{member.label}-{v.name}-s{seed}"
            estimator = make_estimator(
                member.name, spec.task, v.params, random_state=seed, n_jobs=threads
            )
            expected = {
                "label": label,
                "model": member.name,
                "params": _json_ready(estimator_params(estimator)),
                "seed": seed,
                "folds": _json_ready(
                    {"name": spec.folds.name, "hash": ctx.folds.hash, "scheme": asdict(spec.folds)}
                ),
                "data": {"hash": ctx.dataset.hash, "source": ctx.dataset.source},
                "features": {"module": ctx.design.module, "source_hash": ctx.design.module_hash},
                "extra_train": _json_ready(ctx.design.extra_info),
            }
            found = [r for r in existing if _comparable(r, expected)]
            if found:
                callback.info(f"ablation {done}/{total}: {label} already run ({found[-1]['id']})")
                results[v.name].append(found[-1])
                continue
            callback.info(f"ablation {done}/{total}: {label}")
            record = run_model(
                ctx,
                ModelSpec(member.name, v.params, label),
                seed=seed,
                threads=threads,
                callback=callback,
                annotations={
                    "group": group,
                    "ablation": {
                        "id": ablation_id,
                        "variant": v.name,
                        "switched": list(v.switched),
                    },
                },
            )
            results[v.name].append(record)
    rows = summarise(results, {v.name: list(v.switched) for v in configs})
    n = ctx.folds.scheme.n_splits
    data = {
        "id": ablation_id,
        "competition": spec.slug,
        "model": member.name,
        "label": member.label,
        "metric": results[BASE][0]["metric"],
        "greater_is_better": results[BASE][0]["greater_is_better"],
        "base_params": _json_ready(base_params),
        "toggles": toggles,
        "factorial": factorial,
        "seeds": seed_list,
        "folds": {
            "name": spec.folds.name,
            "hash": ctx.folds.hash,
            "used": folds or n,
            "of": n,
            "repeats": ctx.folds.scheme.n_repeats,
        },
        "level": LEVEL,
        "command": cmd,
        "group": group,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "rows": [asdict(r) for r in rows],
        "scores": {
            name: [
                {"seed": s, "repeat": rep, "fold": f, "score": score}
                for (s, rep, f), score in sorted(
                    {k: v for r in recs for k, v in fold_scores(r).items()}.items()
                )
            ]
            for name, recs in results.items()
        },
    }
    folder = ctx.store.root / "ablations" / ablation_id
    write(folder, data)
    return Ablation(ablation_id, folder, rows, data)


# ---------------------------------------------------------------------------------------------
# the table, the chart and the folder


def _num(value: float, digits: int = 5) -> str:
    return "-" if value is None or np.isnan(value) else f"{value:.{digits}f}"


def table(data: dict[str, Any]) -> str:
    """The markdown table of an ablation (from its ``ablation.json``)."""
    metric, better = data["metric"], data["greater_is_better"]
    pct = round(100 * data["level"])
    lines = [
        f"| variant | {metric}: mean ± sd over seeds × folds | n | Δ vs base, {pct}% CI "
        f"(paired by seed and fold: mean(d) ± t·sd(d)/√n) | verdict | time per seed (s) |",
        "| --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in (Row(**x) for x in data["rows"]):
        if r.variant == BASE:
            delta = "(reference)"
        else:
            delta = f"{r.diff:+.5f} [{_num(r.ci_low)}, {_num(r.ci_high)}]"
        lines.append(
            f"| {r.variant} | {r.mean:.5f} ± {r.std:.5f} | {r.n} | {delta} | "
            f"{r.verdict(better)} | {r.seconds:.1f} |"
        )
    return "\n".join(lines)


def report(data: dict[str, Any]) -> str:
    """``ablation.md``: what was run, the command, the table and how to read it."""
    f = data["folds"]
    subset = (
        f"the first {f['used']} of its {f['of']} folds" if f["used"] != f["of"] else "all its folds"
    )
    direction = "higher" if data["greater_is_better"] else "lower"
    base = ", ".join(f"{k}={json.dumps(v)}" for k, v in data["base_params"].items()) or "defaults"
    pct = round(100 * data["level"])
    return "\n".join(
        [
            f"# Ablation of {data['label']} on {data['competition']}",
            "",
            "```",
            data["command"],
            "```",
            "",
            f"Model `{data['model']}` ({base}); toggles {', '.join(data['toggles'])}"
            f"{', every combination' if data['factorial'] else ', one at a time'}. "
            f"Folds `{f['name']}` ({subset}, hash `{f['hash']}`), seeds "
            f"{', '.join(map(str, data['seeds']))}: every variant sees the same folds and seeds. "
            f"{data['metric']}: {direction} is better.",
            "",
            table(data),
            "",
            f"Δ is the variant's score minus the base's on the same (seed, fold), averaged; the "
            f"{pct}% interval is a paired t interval over those n differences. Folds of one seed "
            "share most of their training rows, so the differences are not independent and the "
            "interval is, if anything, a little narrow. 'better' / 'worse': the interval excludes "
            "zero. Every variant x seed is a run in the store (`kfw runs "
            f"{data['competition']}`), grouped in W&B as `{data['group']}`.",
            "",
            "![Δ of each variant from the base, with its interval](ablation.png)",
            "",
        ]
    )


def _chart(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [Row(**x) for x in data["rows"] if x["variant"] != BASE]
    base = next(Row(**x) for x in data["rows"] if x["variant"] == BASE)
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(rows) + 1.5))
    y = np.arange(len(rows))[::-1]
    diffs = np.array([r.diff for r in rows])
    # asymmetric error bars from the interval; NaN (one pair) draws no bar
    err = np.array([[r.diff - r.ci_low, r.ci_high - r.diff] for r in rows]).T
    colours = [
        {"better": "#3d7ab8", "worse": "#d9822b"}.get(
            r.verdict(data["greater_is_better"]), "#9aa5b1"
        )
        for r in rows
    ]
    ax.barh(y, diffs, xerr=np.nan_to_num(err), color=colours, capsize=4)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y, [r.variant for r in rows])
    pct = round(100 * data["level"])
    ax.set_xlabel(
        f"Δ {data['metric']} vs base ({base.mean:.5f}); bars: {pct}% CI paired by seed and fold"
    )
    ax.set_title(f"{data['competition']}: ablation of {data['label']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(folder: Path, data: dict[str, Any]) -> None:
    """Write ``ablation.md``, ``.json`` and ``.png`` into ``folder``, replacing it whole."""

    def fill(staging: Path) -> None:
        (staging / "ablation.json").write_text(files.dumps(data))
        (staging / "ablation.md").write_text(report(data))
        _chart(data, staging / "ablation.png")

    files.write_dir(folder, fill)
