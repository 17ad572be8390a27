"""One storage outage, end to end: ``vqtune run`` on a throwaway PostgreSQL server that is stopped (an immediate
shutdown, as a crash) once a trial has finished, then started again, and the same command run again.

Shared by the soak test (tests/tune/test_outage.py), which asserts on what :func:`outage` measures, and by
benchmarks/outage.py, which records it."""

from __future__ import annotations

import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import optuna
import sqlalchemy
from optuna.trial import TrialState

from tests.postgres import throwaway_server
from tests.tune.conftest import cli_search

STUDY = "outage"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass
class Outage:
    n_trials: int
    finished_before: int  # trials finished when the server stopped
    exit_code: int  # of the run whose server stopped
    stderr_lines: list[str]  # its non-empty stderr lines
    seconds_to_end: float  # from the server's stop to that run's exit
    rerun_exit_code: int
    finished_after: int  # trials finished once the rerun ended
    lost: int  # trials finished before the outage that are missing or changed after the rerun
    duplicated: int  # finished trials whose parameters another finished trial has too
    seconds_to_recover: float  # from the server's start to the rerun's end (its search finished)
    stdout: str = ""
    rerun_output: str = ""

    def record(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("stdout", "rerun_output")}


def _epochs_reported(url: str) -> int:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sqlalchemy.text("SELECT count(*) FROM trial_intermediate_values")).scalar()
    except sqlalchemy.exc.SQLAlchemyError:
        return 0
    finally:
        engine.dispose()


def _finished(url: str) -> dict[int, tuple]:
    study = optuna.load_study(study_name=STUDY, storage=url)
    return {t.number: (t.state, t.params, t.values) for t in study.get_trials(deepcopy=False, states=FINISHED)}


def outage(base_dir: Path, n_trials: int = 3, epochs: int = 2, timeout: float = 300) -> Outage:
    """Run the search in ``base_dir`` (a new server's data, the trials, the space file), stop its server once
    one trial has finished and the next has reported an epoch, start it again and rerun; what happened."""
    base_dir.mkdir(parents=True, exist_ok=True)
    with throwaway_server(base_dir / "pg") as server:
        command, env = cli_search(base_dir, STUDY, server.url, base_dir / "trials", n_trials, epochs)
        driver = subprocess.Popen(command, env=env, cwd=base_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        try:
            # One trial told (its last epoch reported, then told, before the next starts: one at a time) and the
            # next one running.
            while driver.poll() is None and _epochs_reported(server.url) < epochs + 1:
                time.sleep(0.1)
            server.stop()
            stopped = time.perf_counter()
            out, err = driver.communicate(timeout=timeout)
            ended = time.perf_counter()
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait()

        server.start()
        started = time.perf_counter()
        kept = _finished(server.url)
        again = subprocess.run(command, env=env, cwd=base_dir, capture_output=True, text=True, timeout=timeout)
        recovered = time.perf_counter()
        after = _finished(server.url)
    params = [tuple(sorted(p.items())) for _, p, _ in after.values()]
    return Outage(
        n_trials=n_trials, finished_before=len(kept), exit_code=driver.returncode,
        stderr_lines=[line for line in err.splitlines() if line.strip()], seconds_to_end=round(ended - stopped, 1),
        rerun_exit_code=again.returncode, finished_after=len(after),
        lost=sum(1 for number, trial in kept.items() if after.get(number) != trial),
        duplicated=len(params) - len(set(params)), seconds_to_recover=round(recovered - started, 1),
        stdout=out, rerun_output=again.stdout[-2000:] + again.stderr[-3000:],
    )
