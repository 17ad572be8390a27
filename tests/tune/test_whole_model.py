"""Judging the whole model: two-stage trials scored by the bound, multi-objective searches with their own
pruning rule, constraints, and what users see of them (trials table, export, dashboard)."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import get_all_artifact_meta
from optuna.trial import TrialState
from rich.console import Console

from tests.tune.conftest import TINY_BASE, make_space
from vqtune.cli import main
from vqtune.study import Judged, ParetoRule, open_storage
from vqtune.tune import run_study


def _quiet() -> Console:
    return Console(file=open("/dev/null", "w"))


def test_two_stage_trials_report_one_series_and_sample_their_prior(ray_session, tmp_path):
    base = {**TINY_BASE, "optim": {**TINY_BASE["optim"], "epochs": 2},
            "prior": {"channels": 8, "layers": 2, "batch_size": 32, "epochs": 2}}
    space = make_space(tmp_path, n_trials=2, base=base, pruner={"type": "none"}, perplexity={"floor": 0},
                       objective={"metric": "val_bits_per_dim"},
                       constraints=["rate_bits <= 90", "sample_seconds <= 600"])
    run_study(space, console=_quiet())

    storage = open_storage(space.storage)
    study = optuna.load_study(study_name=space.study, storage=storage)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 2
    for trial in trials:
        assert sorted(trial.intermediate_values) == [1, 2, 3, 4]  # stage 1's epochs, then the prior's
        attrs = trial.user_attrs
        assert trial.value == attrs["val_bits_per_dim"]  # the PixelCNN's bound, next to its two references
        assert attrs["val_bits_per_dim_unigram"] > attrs["val_distortion_bits_per_dim"] > 0
        assert attrs["val_bits_per_dim_uniform"] > attrs["val_distortion_bits_per_dim"]
        assert attrs["rate_bits"] in (80.0, 96.0) and attrs["sample_seconds"] > 0  # 4x4 codes of 32 or 64
        assert {m.filename for m in get_all_artifact_meta(trial, storage=storage)} >= {"samples.png",
                                                                                     "reconstructions.png"}
        # stage 1's figures are those of the checkpoint stage 2 encoded, and final_metrics.json says so
        series, used = attrs["metric_series"], attrs["vqvae_epoch"]
        assert attrs["val_recon_mse"] == pytest.approx(series["val_recon_mse"][series["epoch"].index(used)], rel=1e-5)
        written = json.loads((Path(attrs["run_dir"]) / "final_metrics.json").read_text())
        assert written["stages"]["vqvae"]["epoch"] == used and "val_recon_mse" in written["stages"]["vqvae"]["metrics"]
        assert written["stages"]["prior"]["epoch"] == 4 and "val_bits_per_dim" in written["stages"]["prior"]["metrics"]
        assert written["stages"]["trial"] == {"metrics": ["sample_seconds"]}
        feasible = attrs["rate_bits"] <= 90
        assert (trial.constraints["rate_bits <= 90"] <= 0) == feasible
        assert trial.constraints["sample_seconds <= 600"] <= 0
    feasible = [t for t in trials if t.user_attrs["rate_bits"] <= 90]
    if feasible:  # an infeasible trial is never the best, however low its bits/dim
        assert study.best_trial.number == min(feasible, key=lambda t: t.value).number
    else:
        with pytest.raises(ValueError):
            study.best_trial


def test_the_pareto_rule_in_one_sentence():
    rule = ParetoRule(n_startup_trials=2, n_warmup_steps=1, fraction=0.5)
    others = [Judged.point(v) for v in ([0.01, 100.0], [0.02, 50.0], [0.03, 400.0])]
    worst, good, middling = Judged.point([0.05, 500.0]), Judged.point([0.015, 60.0]), Judged.point([0.015, 300.0])
    assert not rule.should_prune(worst, others, epoch=1, signs=[1, 1])  # still warming up
    assert not rule.should_prune(worst, others[:1], epoch=2, signs=[1, 1])  # too few to compare with
    assert rule.should_prune(worst, others, epoch=2, signs=[1, 1])  # dominated by all three
    assert not rule.should_prune(good, others, epoch=2, signs=[1, 1])  # dominated by none
    assert not rule.should_prune(middling, others, epoch=2, signs=[1, 1])  # by one of three: below half
    assert not rule.should_prune(worst, others, epoch=2, signs=[-1, 1])  # a larger first value wins


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_two_objective_search_prunes_and_shows_its_pareto_front(ray_session, tmp_path, capsys):
    space = make_space(
        tmp_path, n_trials=4, max_concurrent=1, perplexity={"floor": 0}, constraints=["rate_bits <= 90"],
        objectives=[{"metric": "val_recon_mse"}, {"metric": "rate_bits"}],
        pruner={"type": "pareto", "options": {"n_startup_trials": 1, "n_warmup_steps": 0, "fraction": 0.01}},
        space={"optim.lr": {"type": "float", "low": 1e-4, "high": 5e-3, "log": True},
               "model.codebook_size": {"type": "categorical", "choices": [32, 64]}},
    )
    result = run_study(space, console=_quiet())
    study = result.study
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    trials = study.get_trials()
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned and all(t.user_attrs["pruned_by"] == "pruner" for t in pruned)
    for trial in trials:  # the objective vector of every epoch it ran
        vectors = trial.user_attrs["objective_vectors"]
        assert sorted(map(int, vectors)) == list(range(1, trial.user_attrs["epochs"] + 1))
    front = {t.number for t in study.best_trials}
    assert front and front == {t.number for t in result.pareto}
    assert all(t.user_attrs["rate_bits"] <= 90 for t in study.best_trials)  # infeasible trials are never on it

    url, name = space.storage.url, space.study
    capsys.readouterr()
    assert main(["trials", name, "--storage", url]) == 0
    table = capsys.readouterr().out
    assert "val_recon_mse" in table and "rate_bits" in table and "pareto" in table
    header, *rows = table.splitlines()
    at = header.index("pareto")  # a left-aligned column: its values start under its name
    marked = {int(row.split()[0]) for row in rows if row[at:at + 6].strip() == "True"}
    assert marked == front
    assert main(["export", "--study", name, "--storage", url, "-o", str(tmp_path / "x.yaml")]) == 2
    assert "choose one of its Pareto-optimal trials" in capsys.readouterr().err
    pick = min(front)
    assert main(["export", "--study", name, "--storage", url, "--trial", str(pick), "-o",
                 str(tmp_path / "pick.yaml")]) == 0
    assert "rate_bits = " in (tmp_path / "pick.yaml").read_text().splitlines()[0]
    assert main(["report", name, "--storage", url, "-o", str(tmp_path / "report.html")]) == 0
    report = (tmp_path / "report.html").read_text()
    for section in ("Pareto front", "Bits per dimension: rate and distortion", "Pareto-optimal trials"):
        assert section in report, section

    # optuna-dashboard, asked as its web page asks, shows the same front under the metric names
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "vqtune.cli", "dashboard", "--storage", url, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "VQTUNE_DASHBOARD_TOKEN": "front-token"})

    def get(path: str, timeout: float):
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": "Token front-token"})
        return urllib.request.urlopen(request, timeout=timeout)

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with get("/api/studies", timeout=2) as response:
                    summaries = json.load(response)["study_summaries"]
                break
            except OSError:
                assert time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.5)
        study_id = next(s["study_id"] for s in summaries if s["study_name"] == name)
        with get(f"/api/studies/{study_id}", timeout=10) as response:
            detail = json.load(response)
    finally:
        server.terminate()
        server.wait(timeout=10)
    # optuna-dashboard draws the front of every trial, infeasible ones too: its feasible part is vqtune's front
    shown = {t["number"] for t in detail["best_trials"]}
    feasible = {t.number for t in trials if t.user_attrs.get("rate_bits", 0) <= 90}
    assert shown & feasible == front
    assert detail["directions"] == ["minimize", "minimize"]
    assert detail.get("objective_names") == ["val_recon_mse", "rate_bits"]
