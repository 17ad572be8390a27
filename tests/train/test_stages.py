"""One fit for both stages: one series of epochs, stage 2 resumes like stage 1, after a stop or a kill."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vqtune.cli import main
from vqtune.config import PARAM_TYPES, PriorConfig, SearchSpace, validate
from vqtune.metrics import METRICS
from vqtune.study import build_pruner
from vqtune.train import Reporter, fit, load_checkpoint

STAGE1, STAGE2 = 2, 3


class Recorder(Reporter):
    def __init__(self, stop_at=None):
        self.epochs, self.starts, self.stop_at = [], [], stop_at

    def on_start(self, info):
        self.starts.append((info.stage, info.start_epoch, info.epochs))

    def report(self, epoch, metrics):
        self.epochs.append(epoch)
        return epoch == self.stop_at


def readme_metrics() -> dict[str, str]:
    """The README's metric table: metric -> stage column."""
    text = (Path(__file__).parents[2] / "README.md").read_text()
    table = text.split("### Metrics", 1)[1].split("\n#", 1)[0]
    return dict(re.findall(r"^\| `(\w+)` \| (\w+) \|", table, re.M))


def _deterministic(history):
    return [{k: v for k, v in h.items() if "per_s" not in k and "seconds" not in k} for h in history]


@pytest.fixture
def both(tiny_config):
    """Stage 1 then the prior, in one run directory."""
    return tiny_config.model_copy(update={
        "optim": tiny_config.optim.model_copy(update={"epochs": STAGE1}),
        "prior": PriorConfig(channels=8, layers=2, batch_size=32, epochs=STAGE2, weight_decay=1e-4, grad_clip=1.0),
    })


def test_both_stages_report_one_series_in_one_run_directory(both):
    assert both.stages == ("vqvae", "prior") and both.total_epochs == STAGE1 + STAGE2
    recorder = Recorder()
    result = fit(both, recorder)

    assert recorder.epochs == list(range(1, STAGE1 + STAGE2 + 1))
    assert recorder.starts == [("vqvae", 1, STAGE1), ("prior", STAGE1 + 1, STAGE1 + STAGE2)]
    assert [h["epoch"] for h in result.stage_history["prior"]] == [3, 4, 5]
    assert "val_recon_mse" in result.stage_history["vqvae"][-1] and "val_nll" in result.final
    assert set(result.models) == {"vqvae", "prior"}
    # one vocabulary: what the trainer reports is what the README's table and vqtune.metrics list
    reported = {key for metrics in result.history for key in metrics}
    per_epoch = {name for name, metric in METRICS.items() if metric.stage != "trial" and metric.levels == 1}
    assert reported == per_epoch and set(METRICS) == set(readme_metrics())
    stages = {"vqvae": "1", "prior": "2", "both": "both", "trial": "trial"}
    assert readme_metrics() == {name: stages[metric.stage] for name, metric in METRICS.items()}
    run = result.run_dir
    prior_lines = [json.loads(line)["epoch"] for line in (run / "prior_metrics.jsonl").read_text().splitlines()]
    assert prior_lines == [3, 4, 5]
    state = load_checkpoint(run / "prior_last.pt")
    assert state["vqvae_checkpoint"] == str((run / "best.pt").resolve())
    # the prior's optimizer settings reach its optimizer
    group = state["optimizer"]["param_groups"][0]
    assert group["weight_decay"] == 1e-4 and group["lr"] == both.prior.lr


def test_a_stopped_prior_resumes_to_the_result_of_an_uninterrupted_run(both, tmp_path):
    stopped = fit(both, Recorder(stop_at=STAGE1 + 1))
    assert stopped.stopped_early and [h["epoch"] for h in stopped.history] == [1, 2, 3]

    recorder = Recorder()
    resumed = fit(both, recorder, resume=True)
    assert resumed.run_dir == stopped.run_dir
    assert recorder.epochs == [3, 4, 5]  # the stopped epoch reported again, then the rest; stage 1 not again
    whole = fit(both.model_copy(update={"run_dir": tmp_path / "whole"}))
    assert _deterministic(resumed.history) == _deterministic(whole.history)


def test_the_pruner_budget_is_every_stage_of_the_config(both):
    base = both.model_dump(mode="json")
    base.pop("run_dir"), base.pop("device")
    space = validate(SearchSpace, {
        "study": "budget", "objective": {"metric": "val_nll"}, "pruner": {"type": "hyperband"},
        "base": {**base, "prior": {**base["prior"], "vqvae_checkpoint": "stage1.pt"}},
        "space": {"prior.lr": {"type": "float", "low": 1e-4, "high": 1e-3}},
    }, "test space", tags=PARAM_TYPES)
    assert space.base.total_epochs == STAGE2
    assert build_pruner(space)._max_resource == STAGE2


KILL_AT_PRIOR_EPOCH = textwrap.dedent("""
    import os, signal, sys
    from vqtune.cli import main
    from vqtune.train import ProgressReporter

    report = ProgressReporter.report
    def report_then_die(self, epoch, metrics):
        stop = report(self, epoch, metrics)
        if epoch == int(os.environ["KILL_AT"]):  # after the epoch's checkpoint, as a kill -9 would find it
            os.kill(os.getpid(), signal.SIGKILL)
        return stop
    ProgressReporter.report = report_then_die
    sys.exit(main(sys.argv[1:]))
""")


def test_vqtune_train_with_a_prior_resumes_stage_2_after_a_kill(tmp_path, capsys):
    settings = ["data.resolution=16", "data.crops_per_image=32", "model.hidden=8", "model.residual_hidden=4",
                "model.residual_blocks=1", "model.embedding_dim=4", "model.codebook_size=16", "optim.batch_size=16",
                f"optim.epochs={STAGE1}", "prior.channels=8", "prior.layers=2", f"prior.epochs={STAGE2}",
                "device=cpu"]
    args = [arg for setting in settings for arg in ("--set", setting)]
    killed_run, whole_run = tmp_path / "killed", tmp_path / "whole"

    child = subprocess.run([sys.executable, "-c", KILL_AT_PRIOR_EPOCH, "train", *args, "--set", f"run_dir={killed_run}"],
                           env={**os.environ, "KILL_AT": str(STAGE1 + 1)}, capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert load_checkpoint(killed_run / "prior_last.pt")["epoch"] == STAGE1 + 1

    assert main(["train", "--resume", str(killed_run)]) == 0
    out = capsys.readouterr()
    assert f"prior epoch   {STAGE1 + STAGE2}/{STAGE1 + STAGE2}" in out.err and "prior val nll" in out.out
    assert main(["train", *args, "--set", f"run_dir={whole_run}"]) == 0

    def lines(run, name):
        return _deterministic([json.loads(line) for line in (run / name).read_text().splitlines()])

    assert [m["epoch"] for m in lines(killed_run, "prior_metrics.jsonl")] == [3, 4, 5]  # each epoch once
    for name in ("metrics.jsonl", "prior_metrics.jsonl"):
        for killed, whole in zip(lines(killed_run, name), lines(whole_run, name), strict=True):
            assert killed == pytest.approx(whole, rel=1e-5), name


class KilledAfterCheckpoint(Exception):
    pass


class DiesInReport(Recorder):
    """Dies inside the report of ``epoch``: after its checkpoint was written, before anyone heard of it."""

    def __init__(self, epoch):
        super().__init__()
        self.die_at = epoch

    def report(self, epoch, metrics):
        if epoch == self.die_at:
            raise KilledAfterCheckpoint
        return super().report(epoch, metrics)


@pytest.mark.parametrize("die_at", [2, STAGE1 + 1])
def test_a_resumed_run_reports_its_last_finished_epoch_again(both, die_at):
    with pytest.raises(KilledAfterCheckpoint):
        fit(both, DiesInReport(die_at))
    recorder = Recorder()
    fit(both, recorder, resume=True)
    # the epoch whose report was lost comes first, then the rest, each once
    assert recorder.epochs == list(range(die_at, STAGE1 + STAGE2 + 1))


def test_a_reporter_that_stops_on_the_reported_again_epoch_stops_the_resumed_run(both):
    with pytest.raises(KilledAfterCheckpoint):
        fit(both, DiesInReport(2))
    resumed = fit(both, Recorder(stop_at=2), resume=True)
    assert resumed.stopped_early and [h["epoch"] for h in resumed.history] == [1, 2]


def test_the_final_figures_describe_the_checkpoint_stage_2_encoded(tiny_config):
    # A learning rate high enough that stage 1's val MSE rises after epoch 2: its best.pt, which stage 2
    # encodes, is not its last epoch, so the last epoch's figures would describe a model no one used.
    config = tiny_config.model_copy(update={
        "data": tiny_config.data.model_copy(update={"crops_per_image": 32}),
        "optim": tiny_config.optim.model_copy(update={"lr": 3e-2, "epochs": 4}),
        "prior": PriorConfig(channels=8, layers=2, batch_size=32, epochs=1),
    })
    result = fit(config)
    stage1 = result.stage_history["vqvae"]
    best = min(stage1, key=lambda h: h["val_recon_mse"])
    assert best["epoch"] != stage1[-1]["epoch"]  # what makes the case (deterministic on CPU)
    assert load_checkpoint(result.run_dir / "best.pt")["epoch"] == best["epoch"]

    final = result.final
    assert final["vqvae_epoch"] == best["epoch"]
    for name in ("val_recon_mse", "val_code_bits", "val_perplexity", "rate_bits"):
        assert final[name] == best[name], name
    prior = result.stage_history["prior"][-1]
    assert final["val_bits_per_dim"] == prior["val_bits_per_dim"] and final["epoch"] == prior["epoch"] == 5
    assert final["val_distortion_bits_per_dim"] == prior["val_distortion_bits_per_dim"]  # the bound's own part
    stages = result.final_stages
    assert stages["vqvae"]["epoch"] == best["epoch"] and stages["prior"]["epoch"] == 5
    assert "val_recon_mse" in stages["vqvae"]["metrics"] and "val_bits_per_dim" in stages["prior"]["metrics"]
    assert not set(stages["vqvae"]["metrics"]) & set(stages["prior"]["metrics"])  # each figure from one stage
