"""Grid searches through `vqtune run`: every distinct trial of the grid once; a failed or interrupted point is run
again, never replaced by a duplicate of another; a conditional parameter does not multiply the points."""

import optuna
import pytest
from optuna.trial import TrialState
from rich.console import Console

from tests.tune.conftest import TINY_BASE, make_space
from vqtune.study import open_storage, open_study, suggest
from vqtune.tune import run_study
from vqtune.tune._searcher import StudySearcher

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# Three distinct trials: with EMA at each of two decays, and without EMA (where the decay is not a parameter).
CONDITIONAL = {
    "quantizer.ema": {"type": "categorical", "choices": [True, False]},
    "quantizer.decay": {"type": "float", "low": 0.9, "high": 0.95, "step": 0.05, "when": {"quantizer.ema": [True]}},
}
POINTS = [{"quantizer.ema": True, "quantizer.decay": 0.9}, {"quantizer.ema": True, "quantizer.decay": 0.95},
          {"quantizer.ema": False}]

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")


def _space(tmp_path, **changes):
    return make_space(tmp_path, **{
        "study": "grid",
        "n_trials": 10,  # more than the grid holds
        "sampler": {"type": "grid", "seed": 0},
        "pruner": {"type": "none"},
        "perplexity": {"floor": 0},
        "base": {**TINY_BASE, "optim": {**TINY_BASE["optim"], "epochs": 1}},
        "space": CONDITIONAL,
        **changes,
    })


def _quiet() -> Console:
    return Console(file=open("/dev/null", "w"))


def _trials(space) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=space.study, storage=open_storage(space.storage)).get_trials()


def _finished_params(trials) -> list[dict]:
    return sorted((t.params for t in trials if t.state in FINISHED), key=lambda p: sorted(p.items()))


def _sorted(points) -> list[dict]:
    return sorted(points, key=lambda p: sorted(p.items()))


def test_a_conditional_grid_runs_each_distinct_trial_once_and_a_failed_point_again(ray_session, tmp_path):
    space = _space(tmp_path)
    # A grid point whose trial failed in an earlier run.
    study = optuna.create_study(study_name=space.study, storage=open_storage(space.storage))
    study.enqueue_trial(POINTS[2])
    failed = study.ask()
    suggest(failed, space)
    study.tell(failed, state=TrialState.FAIL)

    run_study(space, console=_quiet())

    trials = _trials(space)
    assert _finished_params(trials) == _sorted(POINTS)  # all three, none twice, the failed one again
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def test_an_interrupted_grid_point_is_queued_again_and_run(ray_session, tmp_path):
    sizes = {"model.codebook_size": {"type": "categorical", "choices": [32, 64]}}
    space = _space(tmp_path, space=sizes)
    run_study(space.model_copy(update={"n_trials": 1}), console=_quiet())
    # The search of the last point is interrupted (Ctrl-C): the driver fails its trial and queues it again.
    storage = open_storage(space.storage)
    study = open_study(space, storage, None)
    searcher = StudySearcher(study, storage, space, space.n_trials, tmp_path / "trials", tmp_path / "artifacts")
    config = searcher.suggest("ray-trial-1")
    searcher.close()

    interrupted = study.trials[config["number"]]
    assert interrupted.state == TrialState.FAIL
    assert interrupted.user_attrs["fail_reason"] == "the search was interrupted"
    [queued] = study.get_trials(states=(TrialState.WAITING,))
    assert queued.system_attrs["fixed_params"] == config["params"]

    run_study(space, console=_quiet())

    trials = _trials(space)
    assert _finished_params(trials) == [{"model.codebook_size": 32}, {"model.codebook_size": 64}]
    [rerun] = [t for t in trials if t.state in FINISHED and t.params == config["params"]]
    assert rerun.user_attrs["retry_of"] == config["number"]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
