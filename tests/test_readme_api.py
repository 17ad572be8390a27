"""The README's notebook session, run as it is written: the python block of "Python API: a notebook session"."""

import re
from pathlib import Path

import optuna
import pandas as pd

README = Path(__file__).resolve().parents[1] / "README.md"


def notebook_code() -> str:
    section = README.read_text().split("## Python API: a notebook session\n", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return code


def test_the_readme_notebook_session_runs(ray_session, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # its relative paths (studies/, runs/, the exported YAML) land here
    scope: dict = {}
    exec(compile(notebook_code(), str(README), "exec"), scope)

    result = scope["result"]
    assert (tmp_path / "studies" / "notebook.db").exists()
    assert result.counts[optuna.trial.TrialState.COMPLETE] == 2
    assert result.best.number in (0, 1) and result.best_params == result.best.params
    # the callback saw each trial once, after it finished, in the driver
    assert sorted(n for n, _, _ in scope["finished"]) == [0, 1]
    assert {state for _, state, _ in scope["finished"]} == {"COMPLETE"}
    assert isinstance(scope["trials"], pd.DataFrame) and len(scope["trials"]) == 2
    assert (tmp_path / "notebook-best.yaml").exists()
    trained = scope["trained"]
    assert Path(trained.run_dir).resolve() == tmp_path / "runs" / "notebook-best"
    assert (Path(trained.run_dir) / "best.pt").exists()
    assert f"{result.best.number} {result.best.value}" in capsys.readouterr().out
