"""A two-stage search of two-level models: each trial trains both levels, both priors, and samples."""

import optuna
from optuna.artifacts import get_all_artifact_meta
from optuna.trial import TrialState
from rich.console import Console

from tests.tune.conftest import TINY_BASE, make_space
from vqtune.study import open_storage, trials_frame
from vqtune.tune import run_study


def test_a_two_level_two_stage_search_finishes(ray_session, tmp_path):
    base = {**TINY_BASE, "data": {**TINY_BASE["data"], "resolution": 32, "crops_per_image": 12},
            "model": {**TINY_BASE["model"], "levels": 2, "codebook_size": 32},
            "optim": {**TINY_BASE["optim"], "epochs": 1},
            "prior": {"channels": 8, "layers": 2, "batch_size": 16, "epochs": 1}}
    space = make_space(tmp_path, n_trials=2, base=base, pruner={"type": "none"}, perplexity={"floor": 0},
                       objective={"metric": "val_bits_per_dim"},
                       space={"model.top_downsample": {"type": "int", "low": 1, "high": 2}},
                       sampler={"type": "grid"})
    run_study(space, console=Console(file=open("/dev/null", "w")))

    storage = open_storage(space.storage)
    study = optuna.load_study(study_name=space.study, storage=storage)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert sorted(t.params["model.top_downsample"] for t in trials) == [1, 2]
    for trial in trials:
        attrs = trial.user_attrs
        top_cells = (8 >> trial.params["model.top_downsample"]) ** 2  # 32x32: bottom grid 8x8
        assert attrs["rate_bits_top"] == top_cells * 5 and attrs["rate_bits_bottom"] == 64 * 5
        assert attrs["rate_bits"] == attrs["rate_bits_top"] + attrs["rate_bits_bottom"]
        assert trial.value == attrs["val_bits_per_dim"] > attrs["val_distortion_bits_per_dim"] > 0
        assert attrs["sample_seconds"] > 0
        assert "samples.png" in {m.filename for m in get_all_artifact_meta(trial, storage=storage)}
    # the trials table counts both grids' cells in the rate, as the trials themselves do
    frame = trials_frame(study).set_index("number")
    for trial in trials:
        assert frame.loc[trial.number, "bits_per_image"] == trial.user_attrs["rate_bits"]
