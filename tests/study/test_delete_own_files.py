"""`vqtune delete` removes only what its own study made: the run directories its trials recorded at their own
place under trial_dir, and its artifacts inside the store the command resolves. Studies are made with Optuna on
real SQLite files, their run directories as the runner lays them out; no Ray."""

import functools
import json
import uuid
from pathlib import Path

import optuna

from vqtune.cli import main
from vqtune.config import Storage
from vqtune.study import SPACE_ATTR, artifact_store, open_storage, trial_root


def _study(url, name, trial_dir, run_dirs, artifact_dir=None, crafted=()):
    """Study ``name`` in ``url`` whose search recorded ``trial_dir``; trial i records ``run_dirs[i]`` (None: none),
    and each directory there holds a checkpoint. ``artifact_dir``: one uploaded artifact per trial there;
    ``crafted``: artifact ids trial 0 names besides, as an edited database would."""
    study = optuna.create_study(study_name=name, storage=_storage(url))
    study.set_user_attr(SPACE_ATTR, {"trial_dir": str(trial_dir), "artifact_dir": None,
                                     "storage": {"url": url, "heartbeat_interval": 10, "grace_period": 60}})
    for run_dir in run_dirs:
        trial = study.ask()
        if run_dir is not None:
            trial.set_user_attr("run_dir", str(run_dir))
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "last.pt").write_text("weights")
        if artifact_dir is not None:
            optuna.artifacts.upload_artifact(artifact_store=artifact_store(artifact_dir),
                                             file_path=str(_file(artifact_dir.parent / "upload.png")),
                                             study_or_trial=trial)
        for artifact_id in crafted if trial.number == 0 else ():
            trial.storage.set_trial_system_attr(trial._trial_id, f"artifacts:{artifact_id}", json.dumps(
                {"artifact_id": artifact_id, "filename": "x.png", "mimetype": "image/png", "encoding": None}))
        study.tell(trial, 1.0)
    return study


@functools.lru_cache
def _storage(url):  # one per database: opening one costs about half a second
    Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(url)


def _file(path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_two_storages_sharing_a_trial_dir_keep_their_runs_apart(tmp_path, capsys, monkeypatch):
    trials = tmp_path / "trials"
    a, b = f"sqlite:///{tmp_path / 'a' / 'a.db'}", f"sqlite:///{tmp_path / 'b' / 'b.db'}"
    root_a, root_b = trial_root(trials, "quick", a), trial_root(trials, "quick", b)
    assert root_a != root_b and root_a.parent == root_b.parent == trials / "quick"
    monkeypatch.chdir(tmp_path)
    assert trial_root(trials, "quick", "sqlite:///a/a.db") == root_a  # however the URL names the file
    assert trial_root(trials, "q", "postgresql+psycopg2://u:one@db/v") == \
        trial_root(trials, "q", "postgresql+psycopg2://u:two@db/v")  # the password is no part of it
    _study(a, "quick", trials, [root_a / "trial-0000", root_a / "trial-0001"])
    _study(b, "quick", trials, [root_b / "trial-0000", root_b / "trial-0001"])
    (root_a / "ray").mkdir()
    (root_b / "ray").mkdir()
    # the layout before the storage's own directory: both storages' trial 0 in trial_dir/quick, the second one's
    # a fresh trial-0000-2 beside the first
    _study(a, "old", trials, [trials / "old" / "trial-0000"])
    _study(b, "old", trials, [trials / "old" / "trial-0000-2"])
    b_before = _tree(root_b)

    assert main(["delete", "--study", "quick", "--storage", a, "--yes"]) == 0
    assert not root_a.exists() and _tree(root_b) == b_before
    capsys.readouterr()
    # those are tied to no storage: they go only under a trial_dir this command is given, not the database's alone
    assert main(["delete", "--study", "old", "--storage", a, "--trial-dir", str(trials), "--yes"]) == 0
    assert _tree(trials / "old") == ["trial-0000-2", "trial-0000-2/last.pt"]
    assert "kept" in capsys.readouterr().err
    _study(a, "old", trials, [trials / "old" / "trial-0000"])
    assert main(["delete", "--study", "old", "--storage", a, "--yes"]) == 0
    assert "1 run directories of the earlier layout" in capsys.readouterr().out
    assert (trials / "old" / "trial-0000" / "last.pt").exists()
    assert [s.study_name for s in optuna.get_all_study_summaries(b)] == ["quick", "old"]


def test_a_name_that_normalises_to_another_studys_directory_touches_nothing_of_it(tmp_path, capsys):
    url, trials = f"sqlite:///{tmp_path / 'studies.db'}", tmp_path / "trials"
    _study(url, "quick", trials, [trials / "quick" / "trial-0000", trials / "quick" / "trial-0001"])
    for odd in ("quick/", "./quick"):  # stored by an older vqtune, their trials never ran
        _study(url, odd, trials, [None, None])
    before = _tree(trials)

    assert main(["delete", "--study", "quick//", "--storage", url, "--yes"]) == 2  # no such study: refused
    assert "--study 'quick//': a study name holds a /" in capsys.readouterr().err
    for odd in ("quick/", "./quick"):
        assert main(["delete", "--study", odd, "--storage", url, "--yes"]) == 0
        assert f"deleted study {odd!r}" in capsys.readouterr().out
    assert _tree(trials) == before
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["quick"]


def test_a_crafted_database_deletes_no_file_outside_its_own(tmp_path, capsys):
    url, trials, store = f"sqlite:///{tmp_path / 'studies.db'}", tmp_path / "trials", tmp_path / "artifacts"
    victim = tmp_path / "victim"
    fake = str(uuid.uuid4())  # an id of the form Optuna gives, naming a file in the victim's folder
    files = [_file(victim / "notes.txt"), _file(victim / "trial-0000" / "thesis.tex"), _file(tmp_path / "secret.txt"),
             _file(victim / "quick" / "trial-0001" / "keep.txt"), _file(victim / fake)]
    (trials / "quick").mkdir(parents=True)
    (trials / "quick" / "trial-0002").symlink_to(victim / "trial-0000")  # a link inside trial_dir to outside it
    other = _study(url, "other", trials, [None], artifact_dir=store)
    shared = optuna.artifacts.get_all_artifact_meta(other.trials[0], storage=other._storage)[0].artifact_id
    crafted = ["../secret.txt", "notes.txt", str(victim / "notes.txt"), fake, shared]  # shared: other's artifact
    study = _study(url, "quick", trials, [victim / "trial-0000", victim / "quick" / "trial-0001",
                                          trials / "quick" / "trial-0002", trials / "quick" / ".." / "..",
                                          trial_root(trials, "quick", url) / "trial-0004"], artifact_dir=store,
                   crafted=crafted)
    own = trial_root(trials, "quick", url) / "trial-0004"
    study.set_user_attr(SPACE_ATTR, {**study.user_attrs[SPACE_ATTR], "artifact_dir": str(victim)})

    # the recorded store is never used: a file there of an id the study names only stops the deletion
    assert main(["delete", "--study", "quick", "--storage", url, "--yes"]) == 2
    assert f"add --artifact-dir {victim}" in capsys.readouterr().err and own.exists()
    assert main(["delete", "--study", "quick", "--storage", url, "--artifact-dir", str(store), "--yes"]) == 0
    out = capsys.readouterr().out
    assert all(path.read_text() == "x" for path in files)
    assert (trials / "quick" / "trial-0002").is_symlink() and not own.exists()
    assert sorted(p.name for p in store.iterdir()) == [shared]  # quick's own 5 uploads went, other's stayed
    assert "5 artifacts in" in out and "4 recorded run directories that are not its own" in out

    # a recorded trial_dir edited to / or to the victim's folder finds no run directory of the study's there
    for edited in ("/", str(victim)):
        again = _study(url, "again", trials, [victim / "trial-0000", victim / "again" / "trial-0001"])
        again.set_user_attr(SPACE_ATTR, {"trial_dir": edited})
        assert main(["delete", "--study", "again", "--storage", url, "--yes"]) == 0
    assert all(path.read_text() == "x" for path in files) and (victim / "again" / "trial-0001" / "last.pt").exists()


def test_artifacts_in_the_recorded_store_are_not_orphaned(tmp_path, capsys):
    url, trials, store = f"sqlite:///{tmp_path / 'studies.db'}", tmp_path / "trials", tmp_path / "elsewhere"
    run_dir = trial_root(trials, "quick", url) / "trial-0000"
    study = _study(url, "quick", trials, [run_dir], artifact_dir=store)
    study.set_user_attr(SPACE_ATTR, {**study.user_attrs[SPACE_ATTR], "artifact_dir": str(store)})
    assert main(["delete", "--study", "quick", "--storage", url, "--yes"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"add --artifact-dir {store}" in err and "nothing was deleted" in err
    assert len(list(store.iterdir())) == 1 and run_dir.exists()
    assert main(["delete", "--study", "quick", "--storage", url, "--artifact-dir", str(store), "--yes"]) == 0
    assert list(store.iterdir()) == [] and not (trials / "quick").exists()
