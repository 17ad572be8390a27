"""The study's database goes away in the middle of a search: a few lines that say so, nothing finished lost,
and the same command continues once it is back."""

import pytest
import sqlalchemy

from tests.postgres import PostgresUnavailable
from tests.tune.outage import outage


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

    # A worker's own one-line error, passed on by Ray as text: the storage is named once, the cause kept whole.
    worker = f"vqtune.errors.StorageError: storage {space.storage.url}: cannot open the database (connection to "
    worker += 'server at "127.0.0.1", port 5432 failed: Connection refused)'
    with pytest.raises(StorageError) as caught:
        _raise_if_storage_lost(space, RuntimeError(f"Traceback (most recent call last):\n{worker}\n"))
    message = str(caught.value)
    assert message.count(space.storage.url) == 1 and "port 5432 failed: Connection refused)" in message, message


@pytest.mark.soak  # about a minute; benchmarks/outage.py records the same run, repeated, in BENCHMARKS.md
def test_a_database_outage_ends_the_search_in_a_few_lines_and_a_rerun_continues(tmp_path):
    try:
        run = outage(tmp_path, n_trials=3)
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    assert run.exit_code == 2, run.stdout[-2000:] + "\n".join(run.stderr_lines)[-3000:]
    assert len(run.stderr_lines) <= 3, run.stderr_lines
    last = run.stderr_lines[-1]
    assert "stopped answering during the search" in last and "the same command continues" in last, last
    assert run.finished_before >= 1, "no trial had finished before the outage"
    assert run.rerun_exit_code == 0, run.rerun_output
    assert run.finished_after == 3  # nothing finished lost, nothing run twice
    assert run.lost == 0 and run.duplicated == 0
