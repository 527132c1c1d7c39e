"""The W&B mirror: what an offline run holds (read back from its ``.wandb`` log), and failures.

W&B runs offline here and the log is read back with ``wandb leet inspect`` (``--summary
--json`` for config, summary and tags; ``--json`` for the run record, which carries the
group, and the history rows). One module fixture pays for the two offline mirrors (a model
run and an ensemble run); the failure tests reuse its saved runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from kfw.cli.app import app
from kfw.pipeline.mirror import Mirror, resolve_mode, tags, wandb_id
from kfw.progress import Collect
from tests.synth import make_competition

WANDB = Path(sys.executable).with_name("wandb")
BROKEN_ONLINE = {
    "WANDB_MODE": "online",
    "WANDB_BASE_URL": "http://127.0.0.1:9",  # the discard port: connection refused
    "WANDB_API_KEY": "x" * 40,
}
runner = CliRunner()


@dataclass
class Logged:
    """One offline W&B run as read back: the ``--summary`` view and, when asked, every record."""

    summary: dict[str, Any]
    records: list[dict[str, Any]]
    folder: Path

    @property
    def run(self) -> dict[str, Any]:
        """The run record: id, name, project, group, job type, tags, the initial config."""
        return next(r["run"] for r in self.records if r["type"] == "run")

    @property
    def history(self) -> list[dict[str, Any]]:
        return [r["history"]["item"] for r in self.records if r["type"] == "history"]


def read_back(folder: Path, records: bool = True) -> Logged:
    """``wandb leet inspect --summary --json`` (+ ``--json``: one line per record) of a run."""

    def leet(*args: str) -> str:
        return subprocess.run(
            [str(WANDB), "leet", "inspect", *args, str(folder)],
            capture_output=True, text=True, check=True, timeout=120,
        ).stdout  # fmt: skip

    lines = leet("--json").splitlines() if records else []
    return Logged(
        json.loads(leet("--summary", "--json")), [json.loads(x) for x in lines if x.strip()], folder
    )


def _env(tmp: Path, **extra: str | None) -> dict[str, str | None]:
    # no credentials from the machine running the tests: only what a test sets
    env = {"KFW_THREADS": "1", "KFW_HOME": None, "WANDB_API_KEY": None, "WANDB_BASE_URL": None}
    env.update(WANDB_PROJECT=None, WANDB_ENTITY=None, NETRC=str(tmp / "no-netrc"))
    env.update(extra)
    return env


def _runs(home: Path) -> dict[str, dict[str, Any]]:
    return {
        p.parent.name: json.loads(p.read_text())
        for p in (home / "runs" / "synth").glob("*/run.json")
    }


@dataclass
class Mirrored:
    home: Path
    model: dict[str, Any]  # lgbm, mirrored offline by `kfw cv`
    local: dict[str, Any]  # logreg, run with --no-wandb
    ensemble: dict[str, Any]  # blend of the two, mirrored by `kfw stack` with the OOF table
    logged_model: Logged
    logged_ensemble: Logged
    stderr: dict[str, str]


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory: pytest.TempPathFactory) -> Mirrored:
    tmp = tmp_path_factory.mktemp("wandb")
    home = tmp / "home"
    make_competition(home, models=("lgbm", "logreg"))
    stderr = {}
    for name, args, extra in (
        ("cv", ["cv", "synth", "-m", "lgbm"], {"WANDB_MODE": "offline"}),
        ("no-wandb", ["cv", "synth", "-m", "logreg", "--no-wandb"], {"WANDB_MODE": "offline"}),
        ("stack", ["stack", "synth"], {"WANDB_MODE": "offline", "KFW_WANDB_OOF": "1"}),
    ):
        result = runner.invoke(app, ["--home", str(home), *args], env=_env(tmp, **extra))
        assert result.exit_code == 0, result.output
        stderr[name] = result.stderr
    by_label = {r["label"]: r for r in _runs(home).values()}
    model, ensemble = by_label["lgbm"], by_label["blend"]
    return Mirrored(
        home, model, by_label["logreg"], ensemble,
        read_back(Path(model["wandb"]["dir"])), read_back(Path(ensemble["wandb"]["dir"]), records=False), stderr,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# what a mirrored run holds


def test_the_record_says_where_its_mirror_is(mirrored: Mirrored) -> None:
    w = mirrored.model["wandb"]
    assert w["mode"] == "offline"
    assert w["project"] == "kfw-synth"
    assert w["id"] == w["name"] == mirrored.model["id"]
    folder = Path(w["dir"])
    assert folder.parent == mirrored.home / "wandb"
    assert folder.name.startswith("offline-run-") and folder.name.endswith(mirrored.model["id"])
    assert list(folder.glob("*.wandb"))


def test_config_is_the_record_without_its_results(mirrored: Mirrored) -> None:
    r, config = mirrored.model, mirrored.logged_model.summary["config"]
    assert config["kfw_run_id"] == r["id"]
    assert config["params"]["n_estimators"] == 60 and config["params"]["num_leaves"] == 7
    assert config["params"] == json.loads(json.dumps(r["params"]))
    assert config["seed"] == r["seed"] and config["threads"] == 1
    assert config["model"] == "lgbm" and config["label"] == "lgbm" and config["kind"] == "model"
    assert config["folds"] == r["folds"]
    assert config["data"] == r["data"]
    assert config["features"] == r["features"]
    assert config["environment"]["versions"]["lightgbm"] == r["environment"]["versions"]["lightgbm"]
    assert config["metric"] == "roc_auc" and config["greater_is_better"] is True
    assert not {"score", "fold_scores", "mean", "seconds", "wandb"} & set(config)


def test_overall_and_per_fold_scores_are_in_the_summary(mirrored: Mirrored) -> None:
    r, summary = mirrored.model, mirrored.logged_model.summary["summary"]
    assert summary["cv/score"] == pytest.approx(r["score"])
    assert summary["cv/mean"] == pytest.approx(r["mean"])
    assert summary["cv/std"] == pytest.approx(r["std"])
    assert summary["cv/seconds"] == pytest.approx(r["seconds"])
    assert summary["cv/fit_seconds"] == pytest.approx(
        sum(f["fit_seconds"] for f in r["fold_scores"])
    )
    folds = {k: v for k, v in summary.items() if k.startswith("fold_score/")}
    assert folds == pytest.approx(
        {f"fold_score/r0_f{f['fold']}": f["score"] for f in r["fold_scores"]}
    )
    assert not any(k.startswith("fold/") for k in summary)  # per-fit series stay in the history
    assert "oof" not in summary  # the OOF table is off by default


def test_each_fit_is_a_history_row_with_its_times(mirrored: Mirrored) -> None:
    rows = [h for h in mirrored.logged_model.history if "fold/score" in h]
    folds = mirrored.model["fold_scores"]
    assert [h["fit"] for h in rows] == list(range(len(folds)))
    assert [h["fold/score"] for h in rows] == pytest.approx([f["score"] for f in folds])
    assert [h["fold/fit_seconds"] for h in rows] == pytest.approx([f["fit_seconds"] for f in folds])
    assert [h["fold/best_iteration"] for h in rows] == [f["best_iteration"] for f in folds]
    assert [h["fold/n_valid"] for h in rows] == [f["n_valid"] for f in folds]


def test_tags_group_project_and_job_type(mirrored: Mirrored) -> None:
    logged, r = mirrored.logged_model, mirrored.model
    assert logged.summary["tags"] == ["synth", "lgbm", "model", f"folds-{r['folds']['hash']}"]
    assert logged.run["run_group"] == "synth"
    assert logged.run["project"] == "kfw-synth"
    assert logged.run["run_id"] == r["id"] and logged.run["display_name"] == r["id"]
    assert logged.run["job_type"] == "model"


def test_feature_importances_are_a_table_and_a_bar_chart(mirrored: Mirrored) -> None:
    summary = mirrored.logged_model.summary["summary"]
    importance = pd.read_csv(mirrored.home / "runs" / "synth" / mirrored.model["id"] / "importance.csv", index_col=0)  # fmt: skip
    table = json.loads((mirrored.logged_model.folder / "files" / summary["importance_by_fit"]["path"]).read_text())  # fmt: skip
    assert table["columns"] == ["feature", *importance.columns]
    assert [row[0] for row in table["data"]] == importance.index.tolist()
    assert [row[-1] for row in table["data"]] == pytest.approx(importance["mean"].tolist())
    assert summary["importance_table"]["nrows"] == len(importance)  # the bar chart's data
    charts = [r for r in mirrored.logged_model.records if r["type"] == "config"]
    assert any("_wandb.visualize.importance" in r["config"]["update"] for r in charts)


def test_no_data_file_is_copied_into_the_mirror(mirrored: Mirrored) -> None:
    for logged in (mirrored.logged_model, mirrored.logged_ensemble):
        names = [p.name for p in logged.folder.rglob("*") if p.is_file()]
        assert not [n for n in names if n.endswith((".csv", ".parquet"))], names
    everything = [p for p in (mirrored.home / "wandb").rglob("*") if p.is_file()]
    assert not [p for p in everything if p.suffix in (".csv", ".parquet")]


def test_an_ensemble_is_mirrored_with_its_members_and_the_asked_for_oof_table(
    mirrored: Mirrored,
) -> None:
    e, logged = mirrored.ensemble, mirrored.logged_ensemble
    config = logged.summary["config"]
    assert config["members"] == e["members"] and config["method"] == "blend"
    assert logged.summary["summary"]["cv/score"] == pytest.approx(e["score"])
    assert logged.summary["tags"] == ["synth", "blend", "ensemble", f"folds-{e['folds']['hash']}"]
    oof = logged.summary["summary"]["oof"]  # KFW_WANDB_OOF=1 asked for it
    assert oof["nrows"] == 240
    table = json.loads((logged.folder / "files" / oof["path"]).read_text())
    assert table["columns"][:2] == ["Id", "target"]


def test_no_wandb_keeps_the_run_local(mirrored: Mirrored) -> None:
    assert "wandb" not in mirrored.local
    assert "W&B" not in mirrored.stderr["no-wandb"]
    folders = sorted(p.name for p in (mirrored.home / "wandb").glob("offline-run-*"))
    assert len(folders) == 2 and not any(mirrored.local["id"] in f for f in folders)


def test_offline_is_said_once_per_command(mirrored: Mirrored) -> None:
    for command in ("cv", "stack"):
        lines = [line for line in mirrored.stderr[command].splitlines() if "W&B" in line]
        assert len(lines) == 1, mirrored.stderr[command]
        assert "wandb sync" in lines[0] and str(mirrored.home / "wandb") in lines[0]
        assert "warning" not in mirrored.stderr[command]


# ---------------------------------------------------------------------------------------------
# W&B's own environment variables win over kfw's defaults


def test_wandb_variables_the_user_set_are_what_wandb_docs_say(
    mirrored: Mirrored, tmp_path: Path
) -> None:
    record, folder = _unmirrored(mirrored, tmp_path)
    wandb_root = tmp_path / "elsewhere" / "wandb-root"  # not there yet: kfw creates it
    env = _clean_env(
        tmp_path,
        WANDB_DIR=str(wandb_root),
        WANDB_PROJECT="my-project",
        WANDB_ENTITY="my-team",
        WANDB_TAGS="exp-7, night",
        WANDB_MODE="offline",  # wins over the credentials, which alone would mean online
        WANDB_API_KEY="k" * 40,
    )
    mirror = Mirror(tmp_path / "home", env=env)
    callback = Collect()
    out = mirror(record, folder, callback)
    where = Path(out["wandb"]["dir"])
    assert out["wandb"]["mode"] == "offline" and out["wandb"]["project"] == "my-project"
    assert where.parent == wandb_root / "wandb" and where.name.startswith("offline-run-")
    assert not (tmp_path / "home" / "wandb").exists()  # nothing under KFW_HOME/wandb
    assert str(wandb_root / "wandb") in callback.infos[0]  # says where they really went
    logged = read_back(where)
    assert logged.run["project"] == "my-project" and logged.run["entity"] == "my-team"
    assert logged.summary["tags"][:2] == ["exp-7", "night"]  # the user's, then kfw's
    assert logged.summary["tags"][2:] == tags(record)
    assert logged.run["run_group"] == "synth"  # kfw's default where the user set nothing


def test_wandb_mode_disabled_wins_over_credentials(tmp_path: Path) -> None:
    env = _clean_env(tmp_path, WANDB_MODE="disabled", WANDB_API_KEY="k" * 40)
    record = {"id": "r", "competition": "synth"}
    assert Mirror(tmp_path, env=env)(record, tmp_path, Collect()) == record
    assert not (tmp_path / "wandb").exists()


# ---------------------------------------------------------------------------------------------
# failures: one warning, the run untouched (how fast they are noticed: benchmarks/wandb_failures.py)


def _unmirrored(mirrored: Mirrored, tmp_path: Path) -> tuple[dict[str, Any], Path]:
    """A copy of the logreg run (never mirrored) under a fresh KFW_HOME."""
    import shutil

    home = tmp_path / "home"
    src = mirrored.home / "runs" / "synth" / mirrored.local["id"]
    dst = home / "runs" / "synth" / mirrored.local["id"]
    shutil.copytree(src, dst)
    return json.loads((dst / "run.json").read_text()), dst


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "KFW_WANDB"))}
    env.update(NETRC=str(tmp_path / "no-netrc"), **extra)
    return env


def test_an_unreachable_server_costs_one_warning_and_falls_back_offline(
    mirrored: Mirrored, tmp_path: Path
) -> None:
    record, folder = _unmirrored(mirrored, tmp_path)
    mirror = Mirror(tmp_path / "home", env=_clean_env(tmp_path, **BROKEN_ONLINE))
    callback = Collect()
    out = mirror(record, folder, callback)
    assert len(callback.warnings) == 1, callback.warnings
    # found by the TCP probe (before wandb is started), not by wandb's own long retries
    assert "W&B unreachable (127.0.0.1:9: " in callback.warnings[0]
    assert out["wandb"]["mode"] == "offline" and mirror.mode == "offline"
    assert json.loads((folder / "run.json").read_text())["wandb"] == out["wandb"]
    assert callback.infos == []  # the warning already said where the runs went


def test_a_mirror_past_its_timeout_is_stopped_with_one_warning(
    mirrored: Mirrored, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record, folder = _unmirrored(mirrored, tmp_path)
    before = (folder / "run.json").read_bytes()
    mirror = Mirror(tmp_path / "home", env=_clean_env(tmp_path, WANDB_MODE="offline"), timeout=0.5)
    callback = Collect()
    assert mirror(record, folder, callback) == record
    assert callback.warnings == [
        "W&B mirror failed (no answer in 0.5 s, stopped): this command's runs stay in the local store only"
    ]
    # the rest of the command does not pay the timeout again (no child is started), nor warns
    started: list[Any] = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(a))
    assert mirror(record, folder, callback) == record
    assert started == [] and mirror.mode == "disabled" and len(callback.warnings) == 1
    assert (folder / "run.json").read_bytes() == before


def test_a_crash_in_the_mirror_process_is_one_warning(tmp_path: Path) -> None:
    record = {"id": "20250101-000000-x-00000000", "competition": "synth"}
    mirror = Mirror(tmp_path, env=_clean_env(tmp_path, WANDB_MODE="offline"))
    callback = Collect()
    assert mirror(record, tmp_path / "missing", callback) == record
    assert len(callback.warnings) == 1
    assert callback.warnings[0].startswith("W&B mirror failed (FileNotFoundError: ")


def test_without_wandb_installed_the_run_stays_local_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kfw.pipeline.mirror

    monkeypatch.setattr(kfw.pipeline.mirror, "_wandb_installed", lambda: False)
    mirror = Mirror(tmp_path, env=_clean_env(tmp_path, WANDB_MODE="offline"))
    callback = Collect()
    record = {"id": "r", "competition": "synth"}
    for _ in range(2):
        assert mirror(record, tmp_path, callback) == record
    assert callback.warnings == ["wandb is not installed: runs are not mirrored to W&B"]


def test_disabled_means_silent(tmp_path: Path) -> None:
    callback = Collect()
    record = {"id": "r", "competition": "synth"}
    for mirror in (
        Mirror(tmp_path, env=_clean_env(tmp_path, WANDB_MODE="disabled")),
        Mirror(tmp_path, env=_clean_env(tmp_path), enabled=False),
    ):
        assert mirror(record, tmp_path, callback) == record
    assert callback.warnings == callback.infos == []
    assert not (tmp_path / "wandb").exists()


# ---------------------------------------------------------------------------------------------
# the mode, the id, the tags; nothing imported at start-up


def test_the_mode_follows_the_credentials(tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    netrc.chmod(0o600)
    missing = str(tmp_path / "absent")
    assert resolve_mode({"NETRC": missing}) == "offline"
    assert resolve_mode({"NETRC": missing, "WANDB_API_KEY": "k" * 40}) == "online"
    assert resolve_mode({"NETRC": str(netrc)}) == "online"
    # a netrc entry counts only for the host the client talks to
    assert resolve_mode({"NETRC": str(netrc), "WANDB_BASE_URL": "https://wandb.example.org"}) == "offline"  # fmt: skip
    assert resolve_mode({"NETRC": str(netrc), "WANDB_MODE": "offline"}) == "offline"
    assert resolve_mode({"NETRC": str(netrc), "WANDB_MODE": "disabled"}) == "disabled"
    assert resolve_mode({"NETRC": missing, "WANDB_MODE": "online"}) == "online"


def test_ids_and_tags_are_what_wandb_accepts() -> None:
    assert wandb_id("20250101-000000-lgbm-abc") == "20250101-000000-lgbm-abc"
    assert wandb_id("20250101-000000-a/b:c?d") == "20250101-000000-a-b-c-d"
    record = {"competition": "c", "model": "x" * 80, "label": "c", "kind": "model", "folds": {"hash": "h"}}  # fmt: skip
    assert tags(record) == ["c", "x" * 64, "model", "folds-h"]


def test_kfw_help_and_the_mirror_module_import_no_wandb() -> None:
    # kfw.pipeline.runs imports kfw.pipeline.mirror at the top: wandb itself only in the child process
    code = (
        "import sys\n"
        "import kfw.pipeline.mirror, kfw.cli.runs\n"
        "from kfw.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('WANDB', sorted(m for m in sys.modules if m.split('.')[0] == 'wandb'))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "WANDB []"


def test_epochs_of_a_network_and_loss_curves_of_a_language_model_are_history_series(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "runs" / "synth" / "20260101-000000-net-abc"
    run_dir.mkdir(parents=True)
    history = [
        {"epoch": 1.0, "train_loss": 0.9, "valid_loss": 0.8, "seconds": 1.0},
        {"epoch": 2.0, "train_loss": 0.5, "valid_loss": 0.6, "seconds": 1.0},
    ]
    fold = {"repeat": 0, "fold": 1, "score": 0.9, "fit_seconds": 2.0, "history": history}
    record = {
        "id": run_dir.name, "competition": "synth", "kind": "model", "label": "torch-cnn",
        "model": "torch-cnn", "score": 0.9, "fold_scores": [fold],
    }  # fmt: skip
    (run_dir / "run.json").write_text(json.dumps(record))
    (run_dir / "losses.csv").write_text(
        "iter,train_loss,val_loss,lr\n0,4.2,4.2,0.0\n10,3.1,3.3,0.001\n"
    )
    for key, value in _env(tmp_path, WANDB_MODE="offline").items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    mirrored = Mirror(tmp_path)(record, run_dir)  # the child process reads os.environ
    logged = read_back(Path(mirrored["wandb"]["dir"]))
    epochs = [h for h in logged.history if "epochs/r0f1/valid_loss" in h]
    assert [h["epoch"] for h in epochs] == [1, 2]
    assert [h["epochs/r0f1/valid_loss"] for h in epochs] == pytest.approx([0.8, 0.6])
    curve = [h for h in logged.history if "loss/val_loss" in h]
    assert [h["iter"] for h in curve] == [0, 10]
    assert [h["loss/val_loss"] for h in curve] == pytest.approx([4.2, 3.3])
