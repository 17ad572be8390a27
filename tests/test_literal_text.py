"""Text read from a database is data: study names, parameter values, fail reasons and attributes are printed as
they are by `vqtune studies`, `trials` and `report`, never read as rich markup or written as HTML. Studies made
with Optuna on a real SQLite file; no Ray."""

import json

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from vqtune.cli import main
from vqtune.report import _figures as figures

MARKUP = "[bold]x[/bold]"
IMG = "<img src=x onerror=alert(1)>"


def _storage(tmp_path) -> str:
    """Studies ``a[/]b`` (one trial) and ``exp[v2]``: a complete trial whose parameter value is markup and whose
    attributes hold HTML, a complete one whose value is HTML, and a failed one whose reason holds both."""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    storage = optuna.storages.RDBStorage(url)
    odd = optuna.create_study(study_name="a[/]b", storage=storage)
    odd.add_trial(create_trial(value=1.0))
    study = optuna.create_study(study_name="exp[v2]", storage=storage)
    choice = {"model.kind": CategoricalDistribution([MARKUP, IMG])}
    study.add_trial(create_trial(params={"model.kind": MARKUP}, distributions=choice, value=0.5,
                                 intermediate_values={1: 0.7, 2: 0.5},
                                 user_attrs={"val_perplexity": IMG, "note": MARKUP,
                                             "metric_series": {"epoch": [1, 2], IMG: [0.7, 0.5]}}))
    study.add_trial(create_trial(params={"model.kind": IMG}, distributions=choice, value=0.6))
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"fail_reason": f"{MARKUP} {IMG}"}))
    study.add_trial(create_trial(state=TrialState.PRUNED, params={"model.kind": IMG}, distributions=choice,
                                 intermediate_values={1: 0.9}, user_attrs={"pruned_by": IMG}))
    return url


def test_studies_and_trials_print_names_and_values_as_they_are(tmp_path, capsys):
    url = _storage(tmp_path)
    assert main(["studies", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "a[/]b" in out and "exp[v2]" in out
    assert main(["trials", "--study", "exp[v2]", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert MARKUP in out and IMG in out and f"{MARKUP} {IMG}" in out
    assert main(["trials", "--study", "a[/]b", "--storage", url]) == 0  # a name an older vqtune could store
    assert "COMPLETE" in capsys.readouterr().out
    assert main(["studies", "--storage", url, "--format", "json"]) == 0
    assert sorted(row["study"] for row in json.loads(capsys.readouterr().out)) == ["a[/]b", "exp[v2]"]


def test_the_report_escapes_everything_it_read(tmp_path, capsys):
    url = _storage(tmp_path)
    report = tmp_path / "report.html"
    assert main(["report", "--study", "exp[v2]", "--storage", url, "-o", str(report)]) == 0
    html = report.read_text()
    assert "<img src=x" not in html and "[bold]x[/bold]" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # the attribute and the parameter value, as text
    assert "Study exp[v2]" in html
    # plotly reads a subset of HTML in hover text and labels: what came from the study is escaped there too
    study = optuna.load_study(study_name="exp[v2]", storage=url)
    for figure in (figures.parallel_coordinates(study), figures.optimization_history(study),
                   figures.metric_curves(study, "val_recon_mse")):
        assert IMG not in json.dumps(figure.to_plotly_json(), default=str)
    drawn = json.dumps(figures.parallel_coordinates(study).to_plotly_json())
    assert "&lt;img src=x onerror=alert(1)&gt;" in drawn and "<extra></extra>" in drawn  # Optuna's own tags stay
    pruned = figures.intermediate_values(study).data[-1].text
    assert pruned == ("trial 3: pruned by &lt;img src=x onerror=alert(1)&gt;",)
