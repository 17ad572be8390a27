"""A disk fills up in the middle of a search, under the study's database or under the trials' run directories:
a few lines that say so, exit 2, nothing finished lost, and the same command continues once there is space.

The disk is a small tmpfs, which only root (CAP_SYS_ADMIN) may mount: elsewhere these tests skip."""

import contextlib
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.tune.conftest import cli_search

N_TRIALS = 3
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs at tmp_path/disk, unmounted afterwards whatever happened."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root (CAP_SYS_ADMIN)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield disk
    finally:
        # The search's Ray workers may still hold the database open for a few seconds after their driver ended:
        # a lazy unmount detaches the tmpfs now and frees it when they let go.
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(disk)], check=True)


def _fill(disk: Path) -> Path:
    """Write a file until the tmpfs has no byte left."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 16, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\1" * size)
    finally:
        os.close(fd)
    return filler


def _completed(database: Path) -> int:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)) as db:
            return db.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def _run_until_the_disk_fills(tmp_path: Path, database: Path, trial_dir: Path, disk: Path):
    """Start ``vqtune run``, fill ``disk`` once a trial has finished, and let the search end; its result, the
    command (to rerun) and the filler (to delete)."""
    command, env = cli_search(tmp_path, "full", f"sqlite:///{database}", trial_dir, N_TRIALS, epochs=2)
    driver = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        while driver.poll() is None and _completed(database) < 1:
            time.sleep(0.05)
        filler = _fill(disk)
        out, err = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    return driver.returncode, out, err, command, env, filler


def _finished_trials(database: Path) -> dict[int, tuple]:
    study = optuna.load_study(study_name="full", storage=f"sqlite:///{database}")
    return {t.number: (t.state, t.params, t.values, t.intermediate_values)
            for t in study.get_trials(deepcopy=False, states=FINISHED)}


def _check_the_rerun(tmp_path: Path, database: Path, command: list, env: dict, kept: dict) -> list:
    again = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    study = optuna.load_study(study_name="full", storage=f"sqlite:///{database}")
    finished = study.get_trials(states=FINISHED)
    assert len(finished) == N_TRIALS
    assert {n: trial for n, trial in _finished_trials(database).items() if n in kept} == kept  # none lost or changed
    assert len({t.params["quantizer.beta"] for t in finished}) == N_TRIALS  # none run twice
    return study.get_trials(deepcopy=False)


def _assert_ends_in_a_few_lines(returncode: int, out: str, err: str, *said: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert returncode == 2, out[-2000:] + err[-3000:]
    assert 1 <= len(lines) <= 3, err[-3000:]
    assert lines[-1].startswith("vqtune: error: ") and "the same command continues" in lines[-1], lines[-1]
    for words in said:
        assert words in lines[-1], lines[-1]


def test_a_full_disk_under_the_database_ends_the_search_in_a_few_lines_and_a_rerun_continues(tmp_path, small_disk):
    database = small_disk / "studies.db"
    returncode, out, err, command, env, filler = _run_until_the_disk_fills(
        tmp_path, database, tmp_path / "trials", small_disk)
    _assert_ends_in_a_few_lines(returncode, out, err, "stopped answering during the search",
                                "database or disk is full")

    filler.unlink()
    kept = _finished_trials(database)
    assert kept and len(kept) < N_TRIALS, kept
    _check_the_rerun(tmp_path, database, command, env, kept)


def test_a_full_disk_under_the_trials_ends_the_search_in_a_few_lines_and_a_rerun_continues(tmp_path, small_disk):
    database = tmp_path / "studies.db"
    returncode, out, err, command, env, filler = _run_until_the_disk_fills(
        tmp_path, database, small_disk / "trials", small_disk)
    _assert_ends_in_a_few_lines(returncode, out, err, "no space left on its disk", "No space left on device")

    # The trial that found the disk full failed, its parameters queued again, once.
    study = optuna.load_study(study_name="full", storage=f"sqlite:///{database}")
    [full] = [t for t in study.get_trials() if "No space left" in t.user_attrs.get("fail_reason", "")]
    [queued] = study.get_trials(states=(TrialState.WAITING,))
    assert queued.user_attrs["retry_of"] == full.number and queued.system_attrs["fixed_params"] == full.params

    filler.unlink()
    kept = _finished_trials(database)
    assert kept and len(kept) < N_TRIALS, kept
    trials = _check_the_rerun(tmp_path, database, command, env, kept)
    [rerun] = [t for t in trials if t.user_attrs.get("retry_of") == full.number]
    assert rerun.state in FINISHED and rerun.params == full.params


def test_a_picture_that_finds_the_disk_full_is_not_recorded_and_the_report_says_why(tmp_path, small_disk):
    """The artifact store on a full disk: a trial's epoch pictures and its final artifacts fail to upload, and
    leave neither a file (no 0-byte picture) nor an entry in the study; the trial's artifact_error says why, and
    the report shows that where its pictures would be. Once there is space, uploads are whole again."""
    from optuna.artifacts import get_all_artifact_meta
    from PIL import Image

    from tests.tune.conftest import make_space
    from vqtune import run_dir as rd
    from vqtune.report import write_report
    from vqtune.study import artifact_store
    from vqtune.tune._artifacts import upload_trial_artifacts
    from vqtune.tune._trial import StudyReporter

    storage = f"sqlite:///{tmp_path}/studies.db"
    study = optuna.create_study(study_name="full", storage=storage)
    trial = study.ask()
    space = make_space(tmp_path)
    store = artifact_store(small_disk / "artifacts")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    picture = Image.effect_noise((64, 64), 60).convert("RGB")  # noise: a PNG that does not compress to nothing
    picture.save(run_dir / rd.epoch_file(rd.RECONSTRUCTIONS, 1))
    picture.save(run_dir / rd.RECONSTRUCTIONS)
    filler = _fill(small_disk)

    reporter = StudyReporter(trial, study, space, space.base, study.trials[0], store)
    reporter.run_dir = run_dir
    reporter._upload_snapshot(1)  # the epoch's curves and reconstructions: costs the pictures, never the trial
    assert "No space left on device" in trial.user_attrs["artifact_error"]
    with pytest.raises(OSError, match="No space left on device"):
        upload_trial_artifacts(trial, store, run_dir, {"val_recon_mse": 0.01}, "COMPLETE")
    assert get_all_artifact_meta(trial) == []  # nothing recorded as if it were stored
    assert list((small_disk / "artifacts").iterdir()) == []  # no 0-byte file, no temporary file

    study.tell(trial, 0.01)
    write_report(study, study._storage, tmp_path / "report.html", artifact_dir=small_disk / "artifacts")
    page = (tmp_path / "report.html").read_text()
    assert '<p class="artifact-error">not stored: [Errno 28] No space left on device' in page
    assert '<img class="reconstructions"' not in page

    filler.unlink()
    again = study.ask()
    ids = upload_trial_artifacts(again, store, run_dir, {"val_recon_mse": 0.02}, "COMPLETE")
    stored = {meta.filename: meta.artifact_id for meta in get_all_artifact_meta(again)}
    assert sorted(stored.values()) == sorted(ids) and rd.RECONSTRUCTIONS in stored
    with store.open_reader(stored[rd.RECONSTRUCTIONS]) as reader:
        assert reader.read() == (run_dir / rd.RECONSTRUCTIONS).read_bytes()
