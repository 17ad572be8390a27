"""`vqtune run --format json|csv` read by a script, and `vqtune delete` removing one study of a storage and
nothing of another."""

import io
import json

import optuna
import pandas as pd
from optuna.artifacts import get_all_artifact_meta

from tests.tune.test_cli_search import _space_file
from vqtune.cli import main
from vqtune.config import Storage
from vqtune.study import open_storage


def _artifact_files(url, name):
    study = optuna.load_study(study_name=name, storage=open_storage(Storage(url=url), create=False))
    return {meta.artifact_id for trial in study.trials for meta in get_all_artifact_meta(trial, storage=study._storage)}


def test_run_summaries_for_scripts_and_delete_of_one_study(ray_session, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    space = _space_file(tmp_path)
    common = ["--storage", url, "--set", "base.optim.epochs=1"]

    assert main(["run", str(space), "--study", "a", *common, "--format", "json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)  # stdout holds the one document; progress went to stderr
    assert summary["study"] == "a" and summary["storage"] == url and summary["metrics"] == ["val_recon_mse"]
    assert summary["counts"]["complete"] == 2 and summary["counts"]["fail"] == 0
    best = optuna.load_study(study_name="a", storage=url).best_trial
    assert summary["best"] == {"number": best.number, "value": best.value, "params": best.params}
    assert summary["pareto"] is None
    assert f"vqtune export --study a --storage '{url}' -o a-best.yaml" in summary["next"]

    assert main(["run", str(space), "--study", "b", *common, "--n-trials", "1", "--format", "csv"]) == 0
    rows = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(rows.columns) == ["number", "val_recon_mse", "quantizer.beta"] and len(rows) == 1

    assert main(["run", str(space), "--study", "b", *common, "--n-trials", "1"]) == 0  # the table, on stdout
    out = capsys.readouterr().out
    assert out.startswith(f"study b in {url}: 1 complete\nbest: trial 0, val_recon_mse ")
    assert f"  vqtune trials --study b --storage '{url}'" in out

    trials = tmp_path / "trials"
    (trials / "a" / "notes.txt").write_text("mine")  # a user's file among the study's run directories
    kept_artifacts = _artifact_files(url, "b")
    gone_artifacts = _artifact_files(url, "a")
    assert gone_artifacts and kept_artifacts
    b_before = sorted(p.relative_to(trials) for p in (trials / "b").rglob("*"))

    assert main(["delete", "--study", "a", "--storage", url, "--yes"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("deleted study 'a'") and "notes.txt" in captured.err
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["b"]
    assert sorted(p.name for p in (trials / "a").iterdir()) == ["notes.txt"]
    assert sorted(p.relative_to(trials) for p in (trials / "b").rglob("*")) == b_before
    stored = {p.name for p in (tmp_path / "artifacts").iterdir()}
    assert kept_artifacts <= stored and not gone_artifacts & stored
    assert main(["trials", "--study", "b", "--storage", url, "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1
