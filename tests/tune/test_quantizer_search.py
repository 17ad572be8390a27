"""The quantizer as a search dimension, on real photos: each kind and option trains through both stages, samples
and exports; the shipped quantizers.yaml search finishes with trials of both kinds, and its trials table and
report show the codes they keep alive."""

from pathlib import Path

import optuna
import pandas
import pytest
import yaml
from optuna.trial import TrialState
from rich.console import Console

from vqtune.cli import main
from vqtune.config import load_search_space, load_train_config
from vqtune.study import open_storage
from vqtune.tune import run_study

SHIPPED = Path(__file__).resolve().parents[2] / "search_spaces" / "quantizers.yaml"
TINY = ["data.resolution=16", "data.crops_per_image=16", "model.hidden=16", "model.residual_hidden=8",
        "model.residual_blocks=1", "model.embedding_dim=8", "optim.epochs=1", "optim.batch_size=16", "device=cpu"]
PRIOR = 'prior={"channels": 8, "layers": 2, "batch_size": 16, "epochs": 1}'


@pytest.mark.parametrize("options", [
    ["quantizer.kind=fsq", "quantizer.levels=[8,5,5,5]"],
    ["model.codebook_size=64", "quantizer.codebook_dim=4", "quantizer.normalize=true"],
    ["model.codebook_size=64", "quantizer.estimator=rotation"],
], ids=["fsq", "factorized-cosine", "rotation"])
def test_each_quantizer_trains_both_stages_and_samples(options, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", *(a for o in [*TINY, *options, PRIOR, f"run_dir={run}"] for a in ("--set", o))]
    assert main(argv) == 0
    out = capsys.readouterr().out
    k = 1000 if "quantizer.kind=fsq" in options else 64
    assert f"/{k}" in out  # perplexity of K codes
    assert main(["sample", str(run), "--n", "4", "-o", str(tmp_path / "samples.png")]) == 0
    assert (tmp_path / "samples.png").stat().st_size > 0
    config = load_train_config(run / "config.yaml")
    assert config.codebook_size == k


def test_the_shipped_quantizer_search_tries_both_kinds_and_exports_each(ray_session, tmp_path, capsys):
    overrides = [f"base.{o}" for o in TINY if not o.startswith("device")] + [
        "base.prior.channels=8", "base.prior.layers=2", "base.prior.epochs=1", "base.prior.batch_size=16",
        "n_trials=4", "pruner.type=none", "perplexity.floor=0", "sampler.type=random", "sampler.options={}", "sampler.seed=3", "max_concurrent=2", "resources.gpu=0",
        f"storage.url=sqlite:///{tmp_path}/studies.db", f"trial_dir={tmp_path / 'trials'}",
    ]
    space = load_search_space(SHIPPED, overrides)
    run_study(space, console=Console(file=open("/dev/null", "w")))

    study = optuna.load_study(study_name="quantizers", storage=open_storage(space.storage))
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) == 4
    kinds = {t.params["quantizer.kind"] for t in finished}
    assert kinds == {"vq", "fsq"}
    for trial in finished:  # each kind sampled only its own parameters
        own = {"quantizer.levels"} if trial.params["quantizer.kind"] == "fsq" else {"model.codebook_size"}
        other = {"model.codebook_size"} if trial.params["quantizer.kind"] == "fsq" else {"quantizer.levels"}
        assert own <= set(trial.params) and not other & set(trial.params)
        assert 0 < trial.user_attrs["val_active_codes"] <= space.trial_config(trial.params).codebook_size

    storage_url = f"sqlite:///{tmp_path}/studies.db"
    capsys.readouterr()
    assert main(["trials", "--study", "quantizers", "--storage", storage_url]) == 0
    table = capsys.readouterr().out
    assert "val_active" in table and "fsq" in table  # headers are cut to the terminal's width

    for kind in ("vq", "fsq"):
        trial = next(t for t in finished if t.params["quantizer.kind"] == kind)
        exported = tmp_path / f"{kind}.yaml"
        assert main(["export", "--study", "quantizers", "--storage", storage_url, "--trial", str(trial.number),
                     "-o", str(exported)]) == 0
        config = load_train_config(exported)
        assert config.quantizer.kind == kind
        assert config.codebook_size == space.trial_config(trial.params).codebook_size
        assert yaml.safe_load(exported.read_text())["quantizer"]["kind"] == kind

    report, csv = tmp_path / "report.html", tmp_path / "trials.csv"
    assert main(["report", "--study", "quantizers", "--storage", storage_url, "-o", str(report), "--csv", str(csv)]) == 0
    assert "Active codes vs codebook size" in report.read_text()
    frame = pandas.read_csv(csv).set_index("number")
    for trial in finished:
        row = frame.loc[trial.number]
        assert row["quantizer_kind"] == trial.params["quantizer.kind"]
        assert row["codebook_size"] == space.trial_config(trial.params).codebook_size
        assert row["val_active_codes"] == trial.user_attrs["val_active_codes"]
