"""VQTUNE_STORAGE: the storage URL when neither --storage nor the search-space file gives one, so that a
PostgreSQL password need not sit on a command line (ps, docker-compose's commands)."""

import socket

import optuna
import yaml

from tests.test_bad_inputs import space_dict
from vqtune.cli import main


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_read_only_commands_take_the_storage_from_the_environment(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    optuna.create_study(study_name="from-env", storage=url)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VQTUNE_STORAGE", url)
    assert main(["studies"]) == 0
    assert "from-env" in capsys.readouterr().out
    assert main(["studies", "--storage", f"sqlite:///{tmp_path / 'missing.db'}"]) == 2  # --storage wins
    assert "missing.db" in capsys.readouterr().err


def test_run_takes_the_environment_only_when_the_file_names_no_storage(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    secret = f"postgresql+psycopg2://vq:s3cret@127.0.0.1:{_closed_port()}/vq"
    monkeypatch.setenv("VQTUNE_STORAGE", secret)
    data = space_dict(tmp_path)
    del data["storage"]
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(data))
    assert main(["run", "space.yaml"]) == 2
    err = capsys.readouterr().err
    assert "postgresql+psycopg2://vq:***@127.0.0.1" in err and "cannot connect" in err and "s3cret" not in err

    data["storage"] = f"postgresql+psycopg2://vq:x@127.0.0.1:{_closed_port()}/from-file"
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(data))
    assert main(["run", "space.yaml"]) == 2
    assert "/from-file" in capsys.readouterr().err
