"""Mirror saved runs to Weights & Biases; the local run store (:mod:`kfw.core.runstore`) stays the truth.

After a run is saved, :class:`Mirror` logs it to W&B and writes where it went into the run's
``run.json`` under ``"wandb"`` (mode, project, W&B id, and the URL online or the offline run
folder). What is logged:

- config: the run record without its results (model, label, params, seed, threads, metric,
  folds name / hash / scheme, data hash / source, feature module and hash, library versions
  and git commit; an ensemble's method, members and weights), plus ``kfw_run_id``;
- summary: ``cv/score`` (the overall OOF score), ``cv/mean``, ``cv/std``, ``cv/score_without_excluded``,
  ``cv/seconds``, ``cv/fit_seconds``, and each fit's score as ``fold_score/r<repeat>_f<fold>``;
- history: one row per fit (``fit`` is the step): ``fold/score``, ``fold/fit_seconds``,
  ``fold/predict_seconds``, ``fold/best_iteration``, ``fold/n_train``, ``fold/n_valid``;
  the same rows as the table ``folds``;
- feature importances: the table ``importance_by_fit`` (every feature, one column per fit and
  ``mean``) and a bar chart ``importance`` of the top features by mean;
- out-of-fold predictions as the table ``oof``, only when asked (``oof_table=True`` or
  ``KFW_WANDB_OOF=1``), at most :data:`OOF_ROWS` rows. No data file is ever uploaded.

W&B's own environment variables mean what W&B's docs say; kfw's defaults apply only where
the user set nothing. One W&B project per competition, ``kfw-<slug>``, unless
``WANDB_PROJECT`` names one for every competition; ``group=<slug>`` either way, so both
layouts group by competition (a record's own ``group`` field wins: the runs of one
``kfw ablate``). ``WANDB_ENTITY`` picks the team (kfw never passes one). The W&B run id and
name are the kfw run id (characters W&B refuses become ``-``), the job type is the run's kind,
and the tags are the user's ``WANDB_TAGS`` followed by the competition, model, label, kind
and ``folds-<hash>``.

Mode: ``WANDB_MODE`` decides (``disabled``, ``offline``, ``online``); ``--no-wandb`` turns
the mirror off too. Unset, W&B runs online when credentials exist (``WANDB_API_KEY`` or a
netrc entry for the API host), else offline. Runs go where ``WANDB_DIR`` says (its
``wandb/`` folder), else under ``$KFW_HOME/wandb/``; ``wandb sync`` uploads offline runs later.

A W&B failure never fails a run: each mirror runs in a child process (the only place wandb
is imported) that is killed past a hard timeout (``KFW_WANDB_TIMEOUT``, default
:data:`TIMEOUT` seconds); an unreachable server is found by a TCP probe in well under a second
and the runs are mirrored offline instead; any other failure (bad key, wandb missing, a crash,
the timeout) is reported once, as one warning, and the rest of the command's runs stay local.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import json
import math
import netrc
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kfw.core.runstore import write_record
from kfw.progress import NULL, Callback

TIMEOUT = 30.0  # seconds for one run's whole mirror (start-up, init, logging, finish)
INIT_TIMEOUT = 10.0  # wandb.init's own limit on reaching the server
PROBE_TIMEOUT = 2.0  # the TCP probe of the W&B server before going online
OOF_ROWS = 100_000
TOP_FEATURES = 30
DEFAULT_BASE_URL = "https://api.wandb.ai"
# the parts of a record that are results, not configuration
RESULT_KEYS = frozenset(
    {
        "score", "score_without_excluded", "se", "optimistic", "mean", "std", "fold_scores",
        "best_iterations", "seconds",
        "resumed_folds", "started", "finished", "fold_weights", "detail", "score_insample",
        "excluded_ids", "wandb", "id",
        "losses", "val_loss", "train_seconds", "tokens_per_s", "resumed_from",  # kfw lm
        "episodes", "steps", "steps_per_s",  # kfw rl
    }
)  # fmt: skip


def resolve_mode(env: Mapping[str, str] | None = None) -> str:
    """``"disabled"``, ``"offline"`` or ``"online"``, from ``WANDB_MODE`` and the credentials."""
    env = os.environ if env is None else env
    mode = env.get("WANDB_MODE", "").strip().lower()
    if mode in ("disabled", "off") or env.get("WANDB_DISABLED", "").lower() in ("true", "1"):
        return "disabled"
    if mode in ("offline", "dryrun"):
        return "offline"
    if mode in ("online", "run") or has_credentials(env):
        return "online"
    return "offline"


def has_credentials(env: Mapping[str, str] | None = None) -> bool:
    """``WANDB_API_KEY``, or a netrc entry for the W&B API host (what ``wandb login`` writes)."""
    env = os.environ if env is None else env
    if env.get("WANDB_API_KEY", "").strip():
        return True
    host = urlparse(env.get("WANDB_BASE_URL") or DEFAULT_BASE_URL).hostname
    path = Path(env.get("NETRC") or Path.home() / ".netrc")
    try:
        return host is not None and netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def project_name(slug: str, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("WANDB_PROJECT") or f"kfw-{slug}"


def wandb_id(run_id: str) -> str:
    """The kfw run id as a W&B run id (W&B refuses ``/ \\ # ? % :`` and long ids)."""
    return re.sub(r"[^\w.-]", "-", run_id)[:128]


def _probe(base_url: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Why the W&B server cannot be reached over TCP, or None when it can.

    In a daemon thread: a stuck DNS look-up has no timeout of its own.
    """
    url = urlparse(base_url)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(f"{host}:{port}: {exc.strerror or exc}")

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return outcome[0] if outcome else f"{host}:{port}: no answer in {timeout:.0f} s"


def _uses_proxy(env: Mapping[str, str]) -> bool:
    return any(env.get(k) for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"))


class Mirror:
    """Mirrors the runs one command saves; remembers what it already said and whether W&B failed.

    Parameters
    ----------
    kfw_home : Path
        ``KFW_HOME``; offline runs go under ``kfw_home / "wandb"``.
    enabled : bool
        False for ``--no-wandb``.
    oof_table : bool, optional
        Log the out-of-fold predictions as a table; default ``KFW_WANDB_OOF``, else off.
    timeout : float, optional
        Hard limit in seconds for one run's mirror; default ``KFW_WANDB_TIMEOUT``, else
        :data:`TIMEOUT`.
    env : Mapping, optional
        The environment to read (default ``os.environ``); the child process gets it too.
    """

    def __init__(
        self,
        kfw_home: Path,
        *,
        enabled: bool = True,
        oof_table: bool | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.home = Path(kfw_home)
        self.env = dict(os.environ if env is None else env)
        self.enabled = enabled
        self.oof_table = (
            self.env.get("KFW_WANDB_OOF", "") not in ("", "0", "false")
            if oof_table is None
            else oof_table
        )
        self.timeout = (
            float(self.env.get("KFW_WANDB_TIMEOUT") or TIMEOUT) if timeout is None else timeout
        )
        self.mode: str | None = None  # resolved at the first run
        self._told_offline = False

    def _resolve(self, callback: Callback) -> str:
        mode = resolve_mode(self.env) if self.enabled else "disabled"
        if mode == "disabled":
            return mode
        if not _wandb_installed():
            callback.warning("wandb is not installed: runs are not mirrored to W&B")
            return "disabled"
        if mode == "online" and not _uses_proxy(self.env):
            base_url = self.env.get("WANDB_BASE_URL") or DEFAULT_BASE_URL
            reason = _probe(base_url)
            if reason is not None:
                callback.warning(
                    f"W&B unreachable ({reason}): runs are mirrored offline under "
                    f"{self.wandb_dir}; `wandb sync` uploads them later"
                )
                self._told_offline = True
                return "offline"
        return mode

    @property
    def wandb_dir(self) -> Path:
        """Where W&B writes the runs: under ``WANDB_DIR`` when the user set it, as W&B's docs
        say (its ``wandb/`` folder, or ``.wandb/`` where that exists), else ``KFW_HOME/wandb``."""
        root = self.env.get("WANDB_DIR", "").strip()
        if not root:
            return self.home / "wandb"
        root_dir = Path(root).expanduser()
        return root_dir / (".wandb" if (root_dir / ".wandb").exists() else "wandb")

    def __call__(
        self, record: dict[str, Any], run_dir: Path, callback: Callback = NULL
    ) -> dict[str, Any]:
        """Mirror one saved run; returns the record, with ``"wandb"`` added when mirrored."""
        if self.mode is None:
            self.mode = self._resolve(callback)
        if self.mode == "disabled":
            return record
        job = {
            "run_dir": str(run_dir),
            "mode": self.mode,
            "project": project_name(record["competition"], self.env),
            # WANDB_DIR, when set, is W&B's to read (the child inherits the environment)
            "dir": None if self.env.get("WANDB_DIR", "").strip() else str(self.home),
            "tags": tags(record, self.env),
            "oof_rows": OOF_ROWS if self.oof_table else 0,
            "init_timeout": min(INIT_TIMEOUT, self.timeout),
        }
        if job["dir"] is None:
            self.wandb_dir.parent.mkdir(parents=True, exist_ok=True)  # W&B wants WANDB_DIR to exist
        try:
            result = _run_child(job, self.env, self.timeout)
        except MirrorError as exc:
            self.mode = "disabled"  # one warning, one timeout: the command's other runs stay local
            callback.warning(
                f"W&B mirror failed ({exc}): this command's runs stay in the local store only"
            )
            return record
        record = {**record, "wandb": result}
        write_record(Path(run_dir), record)
        if self.mode == "online":
            callback.info(f"W&B: {result.get('url') or result.get('path')}")
        elif not self._told_offline:
            self._told_offline = True
            callback.info(
                f"W&B offline: runs mirrored under {self.wandb_dir}; "
                f"`wandb sync {self.wandb_dir}/offline-run-*` uploads them later"
            )
        return record


class MirrorError(Exception):
    """The child failed: its reason, in one line."""


def _wandb_installed() -> bool:
    return importlib.util.find_spec("wandb") is not None


def _run_child(job: dict[str, Any], env: Mapping[str, str], timeout: float) -> dict[str, Any]:
    """Run the mirror in ``python -m kfw.pipeline.mirror``, killed (with wandb's service) past ``timeout``."""
    child_env = {**env, "WANDB_MODE": job["mode"], "WANDB_SILENT": "true", "WANDB_CONSOLE": "off"}
    # the child must find this kfw even when it is not installed (tests, a source checkout)
    root = str(Path(__file__).resolve().parent.parent)
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kfw.pipeline.mirror"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env,
            cwd=job["dir"] if job["dir"] and Path(job["dir"]).is_dir() else None,
            start_new_session=True,  # its own process group: the kill reaches wandb-core too
        )
    except OSError as exc:
        raise MirrorError(f"cannot start the mirror process: {exc}") from None
    try:
        out, err = proc.communicate(json.dumps(job), timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise MirrorError(f"no answer in {timeout:g} s, stopped") from None
    finally:
        _kill_group(proc)  # wandb-core may outlive a finished child; it has nothing left to do
    lines = out.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        answer = {}
    if proc.returncode != 0 or "error" in answer or "id" not in answer:
        reason = answer.get("error") or _last_line(err) or f"exit code {proc.returncode}"
        raise MirrorError(reason)
    return answer


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows has no process groups to kill
            proc.kill()
    if proc.poll() is None:
        proc.communicate()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:300] if lines else ""


# ---------------------------------------------------------------------------------------------
# the child process: the only code that imports wandb


def config(record: dict[str, Any]) -> dict[str, Any]:
    """The W&B config of a run: its record without the results."""
    out = {k: v for k, v in record.items() if k not in RESULT_KEYS}
    out["kfw_run_id"] = record["id"]
    out["n_excluded"] = len(record.get("excluded_ids") or [])
    return out


def tags(record: dict[str, Any], env: Mapping[str, str] | None = None) -> list[str]:
    """The user's ``WANDB_TAGS`` (comma-separated, as W&B reads them) and then kfw's own:
    competition, model, label, kind and fold file. W&B would let the tags passed to
    ``wandb.init`` replace the variable's; kfw passes both, so neither is lost."""
    env = os.environ if env is None else env
    values = [t.strip() for t in env.get("WANDB_TAGS", "").split(",")]
    values += [
        record.get("competition", ""),
        record.get("model") or record.get("method") or "",
        record.get("label", ""),
        record.get("kind", ""),
        # a language-model run (kfw lm) has no folds
        f"folds-{record['folds']['hash']}" if record.get("folds") else "",
    ]
    seen: dict[str, None] = {}
    for v in values:
        if v:
            seen.setdefault(str(v)[:64], None)  # W&B caps a tag at 64 characters
    return list(seen)


def summary(record: dict[str, Any]) -> dict[str, Any]:
    if record.get("kind") == "rl":  # an agent: the mean return of its last training episodes
        keys = ("episodes", "steps", "steps_per_s", "seconds")
        out = {"rl/mean_return": record["score"], **{f"rl/{k}": record.get(k) for k in keys}}
        return {k: v for k, v in out.items() if v is not None and not _nan(v)}
    folds = record.get("fold_scores") or []
    out: dict[str, Any] = {
        "cv/score": record["score"],
        "cv/se": record.get("se"),
        "cv/mean": record.get("mean"),
        "cv/std": record.get("std"),
        "cv/score_without_excluded": record.get("score_without_excluded"),
        "cv/score_insample": record.get("score_insample"),
        "cv/seconds": record.get("seconds"),
        "cv/fit_seconds": sum(f.get("fit_seconds") or 0.0 for f in folds) if folds else None,
        "cv/resumed_folds": record.get("resumed_folds"),
    }
    for f in folds:
        out[f"fold_score/r{f['repeat']}_f{f['fold']}"] = f["score"]
    return {k: v for k, v in out.items() if v is not None and not _nan(v)}


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


FOLD_COLUMNS = ("score", "fit_seconds", "predict_seconds", "best_iteration", "n_train", "n_valid")


def _importance(path: Path) -> tuple[list[str], list[list[Any]]] | None:
    if not path.is_file():
        return None
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 2:
        return None
    header = ["feature", *rows[0][1:]]
    data = [[r[0], *(float(v) if v else None for v in r[1:])] for r in rows[1:]]
    return header, data


def _rows(path: Path) -> list[dict[str, float]]:
    """The rows of a run's numeric CSV (a language model's ``losses.csv``; an agent's
    ``episodes.csv`` and ``iterations.csv``)."""
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _log_agent(run: Any, run_dir: Path) -> None:
    """An RL run's curves against the environment step: each training episode's return and
    length (``episode/*``), each update's losses and debug statistics (``update/*``)."""
    episodes, updates = _rows(run_dir / "episodes.csv"), _rows(run_dir / "iterations.csv")
    if not episodes and not updates:
        return
    run.define_metric("env_step", summary="none")
    run.define_metric("episode/*", step_metric="env_step", summary="last")
    run.define_metric("update/*", step_metric="env_step", summary="last")
    for r in episodes:
        run.log(
            {
                "env_step": int(r["step"]),
                "episode/return": r["return"],
                "episode/length": r["length"],
            }
        )
    for r in updates:
        run.log(
            {"env_step": int(r["step"]), **{f"update/{k}": v for k, v in r.items() if k != "step"}}
        )


def _log_epochs(run: Any, folds: list[dict[str, Any]]) -> None:
    """A network's per-epoch curves, one series per fit: ``epochs/r0f1/valid_loss`` ..."""
    if not any(f.get("history") for f in folds):
        return
    run.define_metric("epoch", summary="none")
    run.define_metric("epochs/*", step_metric="epoch", summary="none")
    for f in folds:
        for row in f.get("history") or []:
            name = f"epochs/r{f['repeat']}f{f['fold']}"
            values = {f"{name}/{k}": v for k, v in row.items() if k != "epoch"}
            run.log({"epoch": int(row["epoch"]), **values})


def log_run(job: dict[str, Any]) -> dict[str, Any]:
    """Log one saved run (``job["run_dir"]``) to W&B; returns where it went."""
    run_dir = Path(job["run_dir"])
    record = json.loads((run_dir / "run.json").read_text())
    importance = _importance(run_dir / "importance.csv")

    import wandb

    run = wandb.init(
        project=job["project"],
        group=record.get("group") or record["competition"],  # an ablation groups its runs
        name=record["id"],
        id=wandb_id(record["id"]),
        job_type=record["kind"],
        tags=job["tags"],
        config=config(record),
        dir=job["dir"],
        mode=job["mode"],
        settings=wandb.Settings(
            console="off",
            silent=True,
            init_timeout=job["init_timeout"],
            save_code=False,
            disable_code=True,
            disable_git=True,  # the record holds the commit; the process may run outside the repo
            x_disable_stats=True,
            x_disable_machine_info=True,
            x_save_requirements=False,
        ),
    )
    out = {"mode": job["mode"], "project": job["project"], "id": run.id, "name": run.name}
    # the run folder (run.dir is the files/ folder inside it)
    out["dir"] = str(getattr(run.settings, "sync_dir", None) or Path(run.dir).parent)
    if job["mode"] == "online":
        path = run.path if isinstance(run.path, str) else "/".join(run.path)
        out.update(entity=run.entity, path=path, url=run.url)
    ok = False
    try:
        folds = record.get("fold_scores") or []
        run.define_metric("fit", summary="none")
        run.define_metric("fold/*", step_metric="fit", summary="none")
        rows = []
        for i, f in enumerate(folds):
            values = {c: f.get(c) for c in FOLD_COLUMNS if f.get(c) is not None}
            run.log({"fit": i, **{f"fold/{c}": v for c, v in values.items()}})
            rows.append([f["repeat"], f["fold"], *(f.get(c) for c in FOLD_COLUMNS)])
        if rows:
            run.log({"folds": wandb.Table(columns=["repeat", "fold", *FOLD_COLUMNS], data=rows)})
        _log_epochs(run, folds)
        losses = _rows(run_dir / "losses.csv")
        if losses:  # the loss curves of a language model, one history row per evaluation
            run.define_metric("iter", summary="none")
            run.define_metric("loss/*", step_metric="iter", summary="last")
            for r in losses:
                values = {f"loss/{k}": v for k, v in r.items() if k != "iter"}
                run.log({"iter": int(r["iter"]), **values})
        _log_agent(run, run_dir)
        if importance is not None:
            header, data = importance
            mean_col = header.index("mean") if "mean" in header else len(header) - 1
            top = sorted(data, key=lambda r: -(r[mean_col] or 0.0))[:TOP_FEATURES]
            bars = wandb.Table(
                columns=["feature", "importance"], data=[[r[0], r[mean_col]] for r in top]
            )
            run.log(
                {
                    "importance_by_fit": wandb.Table(columns=header, data=data),
                    "importance": wandb.plot.bar(
                        bars,
                        "feature",
                        "importance",
                        title=f"{record['label']}: feature importance",
                    ),
                }
            )
        if job.get("oof_rows"):
            import pandas as pd

            oof = pd.read_parquet(run_dir / "oof.parquet").head(job["oof_rows"])
            run.log({"oof": wandb.Table(dataframe=oof)})
        run.summary.update(summary(record))
        ok = True
    finally:
        run.finish(exit_code=0 if ok else 1)
    return out


def main() -> None:
    """``python -m kfw.pipeline.mirror``: a job as JSON on stdin, the result as one JSON line."""
    try:
        result = log_run(json.loads(sys.stdin.read()))
    except Exception as exc:  # reported to the parent, which turns it into one warning
        print(json.dumps({"error": f"{type(exc).__name__}: {_first_line(str(exc))}"}))
        sys.exit(1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
