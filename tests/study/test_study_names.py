"""A study name is a name: one that would be a path, a control sequence or an option is refused in one line with
exit status 2 and nothing written; names an older vqtune stored are still listed, read and deleted. No Ray."""

import json

import optuna
import pytest
import yaml

from vqtune.cli import main
from vqtune.config import SearchSpace

BAD = ["../x", "/tmp/abs", "a/b", "quick/", "x" * 300, "a\x1b[31mb", "line\nbreak", ".", "..", "-x", " padded"]


def _space(tmp_path, **changes):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({
        "study": "ok", "n_trials": 1, "trial_dir": str(tmp_path / "trials"),
        "storage": f"sqlite:///{tmp_path / 'studies.db'}", "base": {"device": "cpu"},
        "space": {"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-2}}, **changes}))
    return path


@pytest.mark.parametrize("name", BAD)
def test_a_bad_name_is_refused_before_anything_is_written(name, tmp_path, capsys):
    for args in ([f"--study={name}", "--dry-run"], [f"--study={name}"]):  # (the dry run first: it starts no Ray)
        assert main(["run", str(_space(tmp_path)), *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"vqtune: error: --study {name!r}: a study name ")
    assert main(["run", "--dry-run", str(_space(tmp_path, study=name))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "space.yaml: study: a study name " in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml"]  # no database, no trial_dir
    for command in (["trials"], ["report", "-o", str(tmp_path / "r.html")], ["delete", "--yes"],
                    ["export", "-o", str(tmp_path / "best.yaml")]):
        assert main([*command, f"--study={name}", "--storage", f"sqlite:///{tmp_path / 'none.db'}"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--study {name!r}: a study name " in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml"]


def test_the_rule_accepts_names_and_says_what_it_wants():
    for name in ("quick", "exp[v2]", "run 3", "é-2024.01_b", "x" * 128):
        assert SearchSpace.check_study_name(name) == name
    with pytest.raises(ValueError, match=r"holds a / or \\ \(a study name is a name, not a path\); use 1 to 128"):
        SearchSpace.check_study_name("../x")
    assert "1 to 128 printable characters" in SearchSpace.model_fields["study"].description  # the docs say so


def test_names_an_older_vqtune_stored_are_listed_read_and_deleted(tmp_path, capsys):
    url, trials = f"sqlite:///{tmp_path / 'studies.db'}", tmp_path / "trials"
    outside = tmp_path / "x"  # where trial_dir/../x/trial-0000 lands
    (outside / "trial-0000").mkdir(parents=True)
    (outside / "trial-0000" / "last.pt").write_text("someone's")
    storage = optuna.storages.RDBStorage(url)
    for name in ("../x", "a/b", "quick"):
        study = optuna.create_study(study_name=name, storage=storage)
        study.set_user_attr("search_space", {"trial_dir": str(trials)})
        study.enqueue_trial({})
        trial = study.ask()
        trial.set_user_attr("run_dir", str(trials / name / "trial-0000"))
        study.tell(trial, 1.0)
    (trials / "quick" / "trial-0000").mkdir(parents=True)

    assert main(["studies", "--storage", url, "--format", "json"]) == 0
    assert sorted(row["study"] for row in json.loads(capsys.readouterr().out)) == ["../x", "a/b", "quick"]
    assert main(["trials", "--study", "../x", "--storage", url]) == 0
    assert "COMPLETE" in capsys.readouterr().out
    for name in ("../x", "a/b"):
        assert main(["delete", "--study", name, "--storage", url, "--yes"]) == 0
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["quick"]
    assert (outside / "trial-0000" / "last.pt").read_text() == "someone's"
    assert (trials / "quick" / "trial-0000").is_dir()
