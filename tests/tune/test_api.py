"""`run_study` from Python: a YAML path, a dict or a SearchSpace, and Optuna-style callbacks."""

import optuna
import pytest
import yaml
from rich.console import Console

from tests.tune.conftest import make_space
from vqtune.errors import ConfigError
from vqtune.tune import run_study


def test_a_callback_that_raises_stops_the_search_and_its_error_comes_out(ray_session, tmp_path):
    space = make_space(tmp_path, n_trials=4, max_concurrent=1, pruner={"type": "none"})
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space.model_dump(mode="json", exclude_unset=True)))
    seen = []

    def enough(study, trial):
        seen.append((study.study_name, trial.number, trial.state))
        trial.set_user_attr("touched", True)  # a copy: the study's own trial stays as it was
        raise RuntimeError("enough for today")

    with pytest.raises(RuntimeError, match="enough for today"):
        run_study(str(path), callbacks=[enough], console=Console(quiet=True))
    assert seen == [("tiny", 0, optuna.trial.TrialState.COMPLETE)]
    study = optuna.load_study(study_name="tiny", storage=space.storage.url)
    assert study.user_attrs["search_space_file"] == str(path)
    finished = [t for t in study.trials if t.state.is_finished() and t.state != optuna.trial.TrialState.FAIL]
    assert len(finished) < 4 and "touched" not in study.trials[0].user_attrs


def test_a_bad_dict_is_one_line_and_writes_nothing(tmp_path):
    data = make_space(tmp_path).model_dump(mode="json")
    data["n_trials"] = 0
    with pytest.raises(ConfigError, match=r"^search space \(dict\): n_trials: Input should be greater than or equal"):
        run_study(data)
    assert not (tmp_path / "studies.db").exists() and not (tmp_path / "trials").exists()
