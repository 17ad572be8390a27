"""Searches on real photos with tiny models: every trial in the study with its true state and its history."""

import threading
import time

import optuna
import pytest
from optuna.trial import TrialState
from rich.console import Console

from vqtune.study import open_storage
from vqtune.tune import run_study

EPOCHS = 4


def _quiet() -> Console:
    return Console(file=open("/dev/null", "w"))


def _trials(space):
    study = optuna.load_study(study_name=space.study, storage=open_storage(space.storage))
    return study, {t.number: t for t in study.get_trials()}


def test_both_kinds_of_pruning_on_real_data(ray_session, space_factory):
    space = space_factory(
        n_trials=4,
        max_concurrent=1,  # in order, so the median pruner has a finished trial to compare with
        space={
            "quantizer.dead_code_steps": {"type": "categorical", "choices": [0, 5]},
            "optim.lr": {"type": "categorical", "choices": [3e-3, 1e-5]},
        },
    )
    storage = open_storage(space.storage)
    study = optuna.create_study(study_name=space.study, storage=storage)
    # A healthy trial first; then one that learns too slowly, and two whose codebook collapses
    # (without dead-code restarts this model ends up using one code out of 64).
    for restarts, lr in [(5, 3e-3), (5, 1e-5), (0, 3e-3), (0, 1e-5)]:
        study.enqueue_trial({"quantizer.dead_code_steps": restarts, "optim.lr": lr})

    result = run_study(space, console=_quiet())

    study, trials = _trials(space)
    assert len(trials) == 4 and result.counts[TrialState.COMPLETE] == 1
    healthy, slow, collapsed, both = (trials[i] for i in range(4))
    assert healthy.state == TrialState.COMPLETE
    assert sorted(healthy.intermediate_values) == list(range(1, EPOCHS + 1))
    assert healthy.value == healthy.intermediate_values[EPOCHS]
    assert slow.state == TrialState.PRUNED and slow.user_attrs["pruned_by"] == "pruner"
    assert collapsed.state == TrialState.PRUNED and collapsed.user_attrs["pruned_by"] == "perplexity"
    assert collapsed.user_attrs["pruned_epoch"] == 2  # the first epoch after the warm-up
    assert both.state == TrialState.PRUNED
    for trial in (slow, collapsed, both):
        epoch = trial.user_attrs["pruned_epoch"]
        assert sorted(trial.intermediate_values) == list(range(1, epoch + 1))  # the last one included
        assert trial.user_attrs["epochs"] == epoch
    assert collapsed.user_attrs["val_perplexity"] < 0.1 * 64
    for trial in trials.values():
        attrs = trial.user_attrs
        assert {"val_perplexity", "val_usage", "val_psnr", "val_nmse", "val_recon_mse", "train_images_per_s",
                "epochs", "device", "ray_trial_id", "node"} <= set(attrs)
        assert attrs["device"] == "cpu"
    assert study.user_attrs["vqtune_version"]
    assert study.user_attrs["search_space"]["study"] == "tiny"
    assert result.best.number == 0


def test_resume_adds_no_duplicate_and_continues_to_n_trials(ray_session, space_factory):
    space = space_factory(n_trials=2)
    run_study(space, console=_quiet())
    _, first = _trials(space)
    assert len(first) == 2

    run_study(space, console=_quiet())  # the same command again: the study is already done
    _, again = _trials(space)
    assert again.keys() == first.keys()
    assert all(again[n].datetime_complete == first[n].datetime_complete for n in first)

    run_study(space.model_copy(update={"n_trials": 3}), console=_quiet())
    _, more = _trials(space)
    assert len(more) == 3
    assert all(more[n].params == first[n].params and more[n].state == first[n].state for n in first)


def test_a_failing_trial_is_recorded_and_the_search_goes_on(ray_session, space_factory, tmp_path):
    from tests.data.conftest import photo

    photos, broken = tmp_path / "photos", tmp_path / "broken"
    photos.mkdir()
    broken.mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        photo(name, 48, 64).save(photos / f"{name}.png")
        (broken / f"{name}.png").write_bytes(b"not an image")
    base = space_factory().base.model_dump(mode="json")
    base["data"] = {"source": "folder", "path": str(photos), "resolution": 16, "crops_per_image": 32,
                    "cache_dir": str(tmp_path / "cache")}
    space = space_factory(
        n_trials=2,
        max_concurrent=1,
        base=base,
        space={"data.path": {"type": "categorical", "choices": [str(photos), str(broken)]}},
    )
    study = optuna.create_study(study_name=space.study, storage=open_storage(space.storage))
    for path in (broken, photos, photos):
        study.enqueue_trial({"data.path": str(path)})

    result = run_study(space, console=_quiet())

    _, trials = _trials(space)
    failed = trials[0]
    assert failed.state == TrialState.FAIL
    assert str(broken) in failed.user_attrs["fail_reason"] and "no readable image" in failed.user_attrs["fail_reason"]
    assert [t.state for t in trials.values()][1:] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert result.counts[TrialState.COMPLETE] == 2


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_trials_of_a_killed_run_are_failed_and_rerun_but_a_live_run_is_left_alone(ray_session, space_factory):
    space = space_factory(n_trials=3)
    storage = open_storage(space.storage)
    study = optuna.create_study(study_name=space.study, storage=storage)
    study_id = storage.get_study_id_from_name(space.study)

    distributions = {
        "optim.lr": optuna.distributions.FloatDistribution(1e-3, 5e-3, log=True),
        "model.codebook_size": optuna.distributions.CategoricalDistribution([32, 64]),
    }

    def running_trial(params):
        study.enqueue_trial(params)
        trial = study.ask(distributions)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.record_heartbeat(trial_id)
        return trial, trial_id

    killed, _ = running_trial({"optim.lr": 0.002, "model.codebook_size": 32})
    time.sleep(space.storage.grace_period + 1)  # its run died: no heartbeat since
    live, live_id = running_trial({"optim.lr": 0.004, "model.codebook_size": 64})
    stop = threading.Event()

    def other_run():  # another search of the same study, alive: it beats, then finishes its trial
        for _ in range(8):
            storage.record_heartbeat(live_id)
            if stop.wait(0.5):
                return
        study.tell(live, 0.5)

    beating = threading.Thread(target=other_run)
    beating.start()
    try:
        run_study(space, console=_quiet())
    finally:
        stop.set()
        beating.join()

    _, trials = _trials(space)
    assert trials[killed.number].state == TrialState.FAIL
    rerun = [t for t in trials.values() if t.number > live.number and t.params == trials[killed.number].params]
    assert len(rerun) == 1 and rerun[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert trials[live.number].state == TrialState.COMPLETE and trials[live.number].value == 0.5
    finished = [t for t in trials.values() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 3


def test_fake_gpus_are_shared_two_trials_per_gpu(ray_session, space_factory):
    space = space_factory(
        n_trials=4, max_concurrent=4, resources={"cpu": 0.5, "gpu": 0.5},
        pruner={"type": "none"}, perplexity={"floor": 0},
    )
    run_study(space, console=_quiet())
    _, trials = _trials(space)
    gpu_ids = [t.user_attrs["gpu_ids"] for t in trials.values()]
    assert all(len(ids) == 1 for ids in gpu_ids)
    assert sorted(ids[0] for ids in gpu_ids) == ["0", "0", "1", "1"]
    starts = sorted(t.datetime_start for t in trials.values())
    ends = sorted(t.datetime_complete for t in trials.values())
    assert starts[-1] < ends[0]  # all four ran at once on the two GPUs
    assert all(t.user_attrs["device"] == "cpu" for t in trials.values())  # fake GPUs: no CUDA behind them


def test_postgres_storage(ray_session, space_factory, fresh_postgres_db, capsys):
    password = fresh_postgres_db.split(":")[2].split("@")[0]
    space = space_factory(n_trials=2, storage={"url": fresh_postgres_db, "heartbeat_interval": 1})
    console = Console(file=None, force_terminal=False, width=200, stderr=True)
    result = run_study(space, console=console)
    assert result.counts[TrialState.COMPLETE] + result.counts[TrialState.PRUNED] == 2
    assert password not in result.storage_url
    study, _ = _trials(space)
    assert password not in str(study.user_attrs)
    out = capsys.readouterr()
    assert password not in out.out + out.err


def test_a_trial_that_trained_every_epoch_is_never_pruned(ray_session, space_factory):
    # A floor no codebook can clear (every code equally used): the rule would prune at every epoch after the
    # warm-up, and must not at the last, where the trial has finished.
    from tests.tune.conftest import TINY_BASE

    space = space_factory(n_trials=1, max_concurrent=1, pruner={"type": "none"},
                          perplexity={"floor": 1.0, "warmup_epochs": 1},
                          base={**TINY_BASE, "optim": {**TINY_BASE["optim"], "epochs": 2}})
    run_study(space, console=_quiet())
    _, trials = _trials(space)
    (trial,) = trials.values()
    assert trial.state == TrialState.COMPLETE and "pruned_by" not in trial.user_attrs
    assert sorted(trial.intermediate_values) == [1, 2] and trial.user_attrs["epochs"] == 2
