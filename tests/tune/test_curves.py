"""Every metric as a curve: the series attribute, the pictures uploaded while a trial runs, TensorBoard files."""

import importlib.util
import io
import struct

import optuna
import pytest
from optuna.artifacts import get_all_artifact_meta
from rich.console import Console

from tests.tune.conftest import make_space
from vqtune.tune import run_study
from vqtune.study import SERIES_ATTR


def _scalar_tags(path) -> set:
    """The tags of the scalars in one TensorBoard event file (TFRecord: length, its CRC, the record, its CRC)."""
    event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")
    tags, data = set(), path.read_bytes()
    offset = 0
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset : offset + 8])
        event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
        tags |= {value.tag for value in event.summary.value}
        offset += 12 + length + 4
    return tags


def test_series_snapshots_and_tensorboard_files(ray_session, tmp_path):
    pytest.importorskip("tensorboardX")
    space = make_space(tmp_path, n_trials=2, pruner={"type": "none"}, perplexity={"floor": 0.0}, snapshot_every=2)
    result = run_study(space, console=Console(file=open("/dev/null", "w")))
    trials = result.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 2
    for trial in trials:
        series = trial.user_attrs[SERIES_ATTR]
        assert series["epoch"] == [1, 2, 3, 4]
        assert series["val_recon_mse"] == pytest.approx([trial.intermediate_values[e] for e in (1, 2, 3, 4)],
                                                        rel=1e-5)
        assert len(series["val_perplexity"]) == 4 and len(series["train_recon_mse"]) == 4
        names = sorted(meta.filename for meta in get_all_artifact_meta(trial, storage=result.study._storage))
        # epoch 2 while it ran; epoch 4, its last, as the final pictures
        assert {"curves-epoch002.png", "reconstructions-epoch002.png", "curves.png", "reconstructions.png"} <= set(names)
        assert "curves-epoch004.png" not in names
    events = sorted((tmp_path / "trials" / "tiny").rglob("events.out.tfevents*"))
    assert len({path.parent for path in events}) == 2  # one directory of event files per trial
    for path in events:
        assert {"ray/tune/val_recon_mse", "ray/tune/val_perplexity", "ray/tune/objective"} <= _scalar_tags(path)
    if importlib.util.find_spec("tensorboard") is not None:  # the viewer of the optional extra reads them too
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        run = EventAccumulator(str(events[0].parent)).Reload()
        assert len(run.Scalars("ray/tune/val_recon_mse")) == 4


def test_no_tensorboard(ray_session, tmp_path):
    space = make_space(tmp_path, n_trials=1, max_concurrent=1, tensorboard=False, snapshot_every=0,
                       base={**make_space(tmp_path).base.model_dump(mode="json"), "optim": {"epochs": 2}})
    printed = io.StringIO()
    result = run_study(space, console=Console(file=printed, width=1000))
    # said before the search starts: the pruner waits 2 epochs of 2, and so does the perplexity rule; the bundled
    # photos' tiny split
    lines = printed.getvalue().splitlines()
    assert lines[0].startswith("vqtune: warning: pruner median cannot prune: n_warmup_steps 2")
    assert lines[1].startswith("vqtune: warning: perplexity rule cannot prune: warmup_epochs 1")
    assert lines[2].startswith("vqtune: warning: the validation split is tiny: 2 photos")
    trial = result.study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert not list((tmp_path / "trials" / "tiny").rglob("events.out.tfevents*"))
    names = {meta.filename for meta in get_all_artifact_meta(trial, storage=result.study._storage)}
    assert "curves.png" in names and not any("epoch" in name for name in names)
