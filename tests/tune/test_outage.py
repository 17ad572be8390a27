"""The study's database goes away in the middle of a search: a few lines that say so, nothing finished lost,
and the same command continues once it is back."""

import os
import subprocess
import sys
import time

import optuna
import pytest
import sqlalchemy
import yaml
from optuna.trial import TrialState

from tests.postgres import PostgresUnavailable, throwaway_server
from tests.tune.conftest import TINY_BASE


def _epochs_reported(url: str) -> int:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sqlalchemy.text("SELECT count(*) FROM trial_intermediate_values")).scalar()
    except sqlalchemy.exc.SQLAlchemyError:
        return 0
    finally:
        engine.dispose()


def test_what_a_lost_database_raises_becomes_one_line(tmp_path):
    from tests.tune.conftest import make_space
    from vqtune.errors import StorageError
    from vqtune.tune._runner import _raise_if_storage_lost

    space = make_space(tmp_path)
    try:
        try:
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
        except sqlalchemy.exc.OperationalError as cause:
            raise RuntimeError("Tune's controller stopped") from cause
    except RuntimeError as exc:
        with pytest.raises(StorageError) as caught:
            _raise_if_storage_lost(space, exc)
    message = str(caught.value)
    assert "stopped answering during the search" in message and "\n" not in message
    assert "server closed the connection" in message and "the same command continues" in message
    _raise_if_storage_lost(space, ValueError("a bug of its own"))  # the storage answers: not an outage


@pytest.mark.soak  # about a minute, and Ray's own end is not always clean when its workers lose the database
def test_a_database_outage_ends_the_search_in_a_few_lines_and_a_rerun_continues(tmp_path):
    try:
        server_context = throwaway_server(tmp_path / "pg")
        server = server_context.__enter__()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        space = {
            "study": "outage", "n_trials": 3, "sampler": {"type": "random", "seed": 1}, "pruner": {"type": "none"},
            "perplexity": {"floor": 0}, "storage": {"url": server.url, "heartbeat_interval": 1, "grace_period": 3},
            "resources": {"cpu": 1, "gpu": 0}, "max_concurrent": 1, "trial_dir": str(tmp_path / "trials"),
            "base": {**TINY_BASE, "optim": {**TINY_BASE["optim"], "epochs": 2}},
            "space": {"quantizer.beta": {"type": "float", "low": 0.1, "high": 1.0, "log": True}},
        }
        path = tmp_path / "space.yaml"
        path.write_text(yaml.safe_dump(space))
        command = [sys.executable, "-m", "vqtune.cli", "run", str(path)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "disabled"}
        driver = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        deadline = time.time() + 180
        while time.time() < deadline and _epochs_reported(server.url) < 3:  # a trial finished, one runs
            time.sleep(0.2)
        server.stop()
        out, err = driver.communicate(timeout=300)
        lines = [line for line in err.splitlines() if line.strip()]
        assert driver.returncode == 2, out[-2000:] + err[-3000:]
        assert len(lines) <= 3, err[-3000:]
        assert "stopped answering during the search" in lines[-1] and "the same command continues" in lines[-1]

        server.start()
        study = optuna.load_study(study_name="outage", storage=server.url)
        kept = {t.number: t.params for t in study.get_trials(states=(TrialState.COMPLETE,))}
        assert kept, "no trial had finished before the outage"
        again = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
        study = optuna.load_study(study_name="outage", storage=server.url)
        finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
        assert len(finished) == 3  # nothing finished lost, nothing run twice
        assert {n: p for n, p in ((t.number, t.params) for t in finished) if n in kept} == kept
        assert len({t.params["quantizer.beta"] for t in finished}) == 3
    finally:
        server_context.__exit__(None, None, None)
