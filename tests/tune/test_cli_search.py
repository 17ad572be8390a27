"""`vqtune run`, `export`, `trials`, `studies` as a user runs them, ending in `vqtune train` of the export."""

import yaml

from tests.tune.conftest import TINY_BASE
from vqtune.cli import main


def _space_file(tmp_path, **changes):
    space = {
        "study": "cli",
        "n_trials": 2,
        "sampler": {"type": "random", "seed": 1},
        "pruner": {"type": "none"},
        "resources": {"cpu": 1, "gpu": 0},
        "trial_dir": str(tmp_path / "trials"),
        "base": TINY_BASE,
        "space": {"quantizer.beta": {"type": "float", "low": 0.1, "high": 1.0, "log": True}},
        **changes,
    }
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def test_run_export_train(ray_session, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    space = _space_file(tmp_path)
    assert main(["run", str(space), "--set", "base.optim.epochs=2"]) == 0
    out = capsys.readouterr().out  # the summary is stdout's; progress stays on stderr
    assert "study cli in sqlite:///" in out and "2 complete" in out
    assert "vqtune export --study cli -o cli-best.yaml" in out
    assert (tmp_path / "studies" / "vqtune.db").exists()  # the default storage, relative to the working dir

    assert main(["trials", "cli"]) == 0
    table = capsys.readouterr().out
    assert "COMPLETE" in table and "quantizer.beta" in table
    assert main(["studies"]) == 0
    assert "cli" in capsys.readouterr().out

    assert main(["export", "--study", "cli", "-o", "best.yaml"]) == 0
    exported = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert exported["optim"]["epochs"] == 2 and exported["model"]["codebook_size"] == 64
    assert 0.1 <= exported["quantizer"]["beta"] <= 1.0
    capsys.readouterr()
    assert main(["train", "best.yaml", "--set", "optim.epochs=1"]) == 0
    assert "done: runs/cli-trial-" in capsys.readouterr().out

    assert main(["export", "--study", "cli", "--trial", "1", "-o", "second.yaml"]) == 0
    assert main(["export", "--study", "cli", "--trial", "7", "-o", "x.yaml"]) == 2
    assert "has no trial 7" in capsys.readouterr().err


def test_bad_input_writes_nothing(ray_session, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "s.db"
    cases = [
        (["--set", "n_trials=0"], "n_trials: Input should be greater than or equal to 1"),
        (["--set", "base.data.source=folder", "--set", f"base.data.path={tmp_path / 'nowhere'}"], "nowhere"),
        (["--storage", "nonsense://"], "storage"),
        (["--set", "space.quantizer.beta.low=5"], "space cannot be changed key by key with --set; edit the file"),
        (["--set", "resources.cpu=64"], "resources.cpu: 64 CPUs per trial, but no Ray node has more than 2"),
    ]
    for args, message in cases:
        assert main(["run", str(_space_file(tmp_path)), "--storage", f"sqlite:///{db}", *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not db.exists() and not (tmp_path / "studies").exists()


def test_export_and_trials_of_unknown_or_empty_studies(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'none.db'}"
    assert main(["export", "--study", "x", "--storage", url, "-o", str(tmp_path / "b.yaml")]) == 2
    assert "no such database file" in capsys.readouterr().err
    import optuna

    optuna.create_study(study_name="empty", storage=url)
    assert main(["export", "--study", "nope", "--storage", url, "-o", str(tmp_path / "b.yaml")]) == 2
    err = capsys.readouterr().err
    assert "no study 'nope'" in err and "studies there: empty" in err
    assert main(["export", "--study", "empty", "--storage", url, "-o", str(tmp_path / "b.yaml")]) == 2
    assert "not made by vqtune run" in capsys.readouterr().err
    assert not (tmp_path / "b.yaml").exists()
