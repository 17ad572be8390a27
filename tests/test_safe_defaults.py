"""Safe defaults, with real databases and files: storage passwords never shown, the dashboard on loopback,
YAML and checkpoints never run code, artifacts never read or written outside their store."""

from __future__ import annotations

import copy
import io
import json
import logging
import os
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import torch
import yaml
from optuna.artifacts import upload_artifact
from sqlalchemy.engine import make_url

from tests.data.conftest import photo
from tests.tune.conftest import TINY_BASE
from vqtune.cli import main
from vqtune.errors import VqtuneError
from vqtune.study import artifact_store

TINY_TRAIN = {**copy.deepcopy(TINY_BASE), "device": "cpu", "optim": {**TINY_BASE["optim"], "epochs": 1}}


def space_file(path: Path, **changes) -> Path:
    space = {
        "study": "safe",
        "n_trials": 2,
        "sampler": {"type": "random", "seed": 0},
        "pruner": {"type": "none"},
        "resources": {"cpu": 1, "gpu": 0},
        "trial_dir": str(path.parent / "trials"),
        "base": {**TINY_TRAIN, "optim": {**TINY_TRAIN["optim"], "epochs": 2}},
        "space": {"quantizer.beta": {"type": "float", "low": 0.1, "high": 1.0, "log": True}},
        **changes,
    }
    path.write_text(yaml.safe_dump(space))
    return path


def one_line(err: str) -> str:
    line = err.strip()
    assert err == line + "\n" and line.startswith("vqtune: error: "), err
    return line


# ---------------------------------------------------------------------------------- (a) passwords masked


def test_storage_password_is_masked_everywhere(ray_session, fresh_postgres_db, tmp_path, capsys, caplog,
                                               monkeypatch):
    password = make_url(fresh_postgres_db).password
    masked = make_url(fresh_postgres_db).render_as_string(hide_password=True)
    assert password and "***" in masked
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO)
    space = space_file(tmp_path / "space.yaml")
    url = ["--storage", fresh_postgres_db]
    printed = []

    def cli(*argv, status=0):
        assert main(list(argv)) == status, argv
        out = capsys.readouterr()
        printed.append(out.out + out.err)
        return out.out + out.err

    assert f"study safe in {masked}: 2 complete" in cli("run", str(space), *url, "--verbose")
    assert "safe" in cli("studies", *url)
    assert "COMPLETE" in cli("trials", "safe", *url)
    assert "wrote best.yaml" in cli("export", "--study", "safe", *url, "-o", "best.yaml")
    assert "wrote report.html, trials.csv" in cli("report", "safe", *url, "-o", "report.html", "--csv", "trials.csv")
    served = []
    monkeypatch.setattr("vqtune.dashboard.make_server", lambda *args: NotServed(*args, served=served))
    assert f"storage {masked}" in cli("dashboard", *url)
    assert served
    # errors name the storage too: an unknown study, and a wrong password (that one is not shown either)
    assert masked in cli("export", "--study", "nope", *url, "-o", "x.yaml", status=2)
    wrong = make_url(fresh_postgres_db).set(password="wr0ngpassw0rd").render_as_string(hide_password=False)
    refused = cli("run", str(space), "--storage", wrong, status=2)
    assert "cannot connect" in refused and "wr0ngpassw0rd" not in refused

    for output in printed:
        assert password not in output
    assert password not in caplog.text
    # the study records the search with the URL masked, and no row of the database holds the password
    study = optuna.load_study(study_name="safe", storage=fresh_postgres_db)
    assert study.user_attrs["search_space"]["storage"]["url"] == masked
    engine = sqlalchemy.create_engine(fresh_postgres_db)
    with engine.connect() as connection:
        tables = sqlalchemy.inspect(connection).get_table_names()
        rows = {table: connection.execute(sqlalchemy.text(f'SELECT * FROM "{table}"')).all() for table in tables}
    engine.dispose()
    assert {"studies", "trials", "study_user_attributes", "trial_user_attributes"} <= set(rows)
    # every value in full: a row's repr cuts long strings short
    assert not [(table, row) for table, table_rows in rows.items() for row in table_rows
                if any(password in str(value) for value in row)]
    # nor any file: the report, the exported config, the table, run directories, artifacts, Ray's trial state
    report = (tmp_path / "report.html").read_text()
    assert masked in report
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {"report.html", "best.yaml", "trials.csv", "reconstructions.png", "metrics.jsonl"} <= {p.name for p in files}
    logs = Path(ray_session._private.worker._global_node.get_logs_dir_path())  # those of Ray's workers too
    files += [p for p in logs.rglob("*") if p.is_file()]
    pickles = list((tmp_path / "trials/safe").glob("storage-*/ray/safe/tuner.pkl"))
    assert len(pickles) == 1  # Ray's pickle of the searcher is looked at too
    assert [p for p in files if password.encode() in p.read_bytes()] == []


# ---------------------------------------------------------------------------------- (b) dashboard on loopback


class NotServed:
    """Stands in for wsgiref's server: records the address and the app, binds nothing and returns at once."""

    def __init__(self, host, port, app, *classes, served):
        self.server_port = port
        served.append((host, port, app))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def serve_forever(self):
        return None


def test_dashboard_binds_loopback_unless_told(tmp_path, capsys, monkeypatch):
    import optuna_dashboard

    url = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna.create_study(study_name="seen", storage=url)
    apps, served = [], []
    wsgi = optuna_dashboard.wsgi
    monkeypatch.setattr(optuna_dashboard, "wsgi", lambda storage, **kwargs: apps.append(
        (storage.get_all_studies()[0].study_name, kwargs)) or wsgi(storage, **kwargs))
    monkeypatch.setattr("vqtune.dashboard.make_server", lambda *args: NotServed(*args, served=served))

    assert main(["dashboard", "--storage", url]) == 0
    (name, kwargs), (host, port, app) = apps.pop(), served.pop()
    assert name == "seen" and (host, port) == ("127.0.0.1", 8080)
    assert kwargs["artifact_store"].root == tmp_path / "artifacts"
    assert app.hosts == {"127.0.0.1", "localhost"} and not app.allow_writes  # the Host check, read-only
    assert "http://127.0.0.1:8080/?token=" in capsys.readouterr().out

    assert main(["dashboard", "--storage", url, "--host", "0.0.0.0", "--port", "8123"]) == 0
    host, port, app = served.pop()
    assert (host, port) == ("0.0.0.0", 8123)
    assert "http://0.0.0.0:8123/?token=" in capsys.readouterr().out


# ---------------------------------------------------------------------------------- (c) YAML is safe-loaded


def _tagged(marker: Path) -> str:
    return f"!!python/object/apply:os.system ['touch {marker}']"


@pytest.mark.parametrize("command", ["run", "train", "config", "--set"])
def test_yaml_python_tags_are_refused_not_run(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "marker"
    yaml.unsafe_load(_tagged(tmp_path / "control"))  # the payload does run when YAML is loaded unsafely
    assert (tmp_path / "control").exists()

    if command == "run":
        path = space_file(tmp_path / "space.yaml", storage=f"sqlite:///{tmp_path / 'study.db'}")
        path.write_text(path.read_text().replace("study: safe", f"study: {_tagged(marker)}"))
        argv, where = ["run", str(path)], f"{path}: line "
    elif command == "--set":
        argv, where = ["train", "--set", f"run_dir={_tagged(marker)}"], "--set run_dir: cannot parse value "
    else:
        path = tmp_path / "train.yaml"
        path.write_text(yaml.safe_dump(TINY_TRAIN) + f"run_dir: {_tagged(marker)}\n")
        argv, where = [command, str(path)], f"{path}: line "

    before = {p.name for p in tmp_path.iterdir()}
    assert main(argv) == 2
    line = one_line(capsys.readouterr().err)
    assert where in line
    assert "tag !!python/object/apply:os.system is not allowed" in line and "remove the tag" in line
    assert not marker.exists()
    assert {p.name for p in tmp_path.iterdir()} == before  # no study, run directory or output either


# ---------------------------------------------------------------------------------- (d) checkpoints: weights only


class RunsCode:
    """Pickled, this object asks the loader to call os.system."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _hostile_checkpoint(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": 1, "vqtune_version": "0.1.0", "model": RunsCode(marker)}, path)
    return path


@pytest.mark.parametrize("command", ["sample", "run", "train --resume"])
def test_checkpoints_that_would_run_code_are_refused(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "marker"
    control = _hostile_checkpoint(tmp_path / "control.pt", tmp_path / "control")
    torch.load(control, weights_only=False)  # the payload does run when the file is unpickled unsafely
    assert (tmp_path / "control").exists()

    run_dir = tmp_path / "run"
    if command == "sample":
        hostile = _hostile_checkpoint(run_dir / "prior_best.pt", marker)
        argv = ["sample", str(run_dir), "-o", "samples.png"]
    elif command == "run":  # a search over the prior of this stage-1 checkpoint
        hostile = _hostile_checkpoint(run_dir / "best.pt", marker)
        space = space_file(tmp_path / "space.yaml", storage=f"sqlite:///{tmp_path / 'study.db'}",
                           objective={"metric": "val_nll"},
                           base={**TINY_TRAIN, "prior": {"vqvae_checkpoint": str(hostile), "epochs": 1}},
                           space={"prior.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}})
        argv = ["run", str(space)]
    else:
        hostile = _hostile_checkpoint(run_dir / "last.pt", marker)
        (run_dir / "config.yaml").write_text(yaml.safe_dump({**TINY_TRAIN, "run_dir": str(run_dir)}))
        argv = ["train", "--resume", str(run_dir)]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert not marker.exists()
    line = one_line(err)
    assert f"{hostile}: refused to load: the file asks to run code (it would call posix.system)" in line
    assert "use a checkpoint written by vqtune" in line
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # no study, run or output


# ---------------------------------------------------------------------------------- (e) artifacts stay inside


def test_artifact_store_never_leaves_its_directory(tmp_path):
    store = artifact_store(tmp_path / "store")
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text("not for the store")
    (tmp_path / "store" / "link").symlink_to(outside, target_is_directory=True)
    hostile = ["../outside/escape.bin", "../../escape.bin", "a/../../outside/escape.bin", str(outside / "escape.bin"),
               "link/escape.bin"]
    for artifact_id in hostile:
        with pytest.raises(VqtuneError, match="outside the artifact store"):
            store.write(artifact_id, io.BytesIO(b"written"))
    for artifact_id in ("../outside/secret.txt", "link/secret.txt", str(secret)):
        with pytest.raises(VqtuneError, match="outside the artifact store"):
            store.open_reader(artifact_id)
        with pytest.raises(VqtuneError, match="outside the artifact store"):
            store.remove(artifact_id)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"] and secret.read_text() == "not for the store"
    assert not (tmp_path.parent / "escape.bin").exists()
    # what Optuna names itself stays usable
    store.write("0f3a-inside", io.BytesIO(b"kept"))
    with store.open_reader("0f3a-inside") as reader:
        assert reader.read() == b"kept"


@pytest.mark.filterwarnings("ignore:The number of trials is too small")
def test_report_refuses_an_artifact_id_that_points_outside_the_store(tmp_path, capsys):
    """A study's trials name their artifacts; one naming a file outside the store is not read into the report."""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    store = artifact_store(tmp_path / "artifacts")
    recon = tmp_path / "run" / "reconstructions.png"
    recon.parent.mkdir()
    photo("coffee", 32, 32).save(recon)
    photo("astronaut", 32, 32).save(tmp_path / "secret.png")
    study = optuna.create_study(study_name="seen", storage=url)
    lr = {"optim.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    trial = study.ask(lr)
    upload_artifact(artifact_store=store, file_path=str(recon), study_or_trial=trial)
    study.tell(trial, 0.2)
    assert main(["report", "--study", "seen", "--storage", url, "-o", str(tmp_path / "report.html")]) == 0
    assert 'class="reconstructions"' in (tmp_path / "report.html").read_text()  # what Optuna stored is shown
    capsys.readouterr()

    trial = study.ask(lr)  # a tampered record: the best trial's reconstructions "are" a file outside the store
    study._storage.set_trial_system_attr(trial._trial_id, "artifacts:../secret.png", json.dumps(
        {"artifact_id": "../secret.png", "filename": "reconstructions.png", "mimetype": "image/png", "encoding": None}))
    study.tell(trial, 0.1)
    assert main(["report", "--study", "seen", "--storage", url, "-o", str(tmp_path / "tampered.html")]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"artifact id '../secret.png' names a file outside the artifact store {tmp_path / 'artifacts'}" in line
    assert not (tmp_path / "tampered.html").exists()
