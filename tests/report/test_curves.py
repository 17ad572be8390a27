"""The report's metric curves: any metric of every trial, from the series attribute, old studies included."""

import optuna

from vqtune.report import _figures as figures
from vqtune.report import write_report
from vqtune.study import SERIES_ATTR


def _study(tmp_path) -> optuna.Study:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/curves.db")
    study = optuna.create_study(study_name="curves", storage=storage)
    for number, mse in enumerate((0.02, 0.01)):
        trial = study.ask()
        series = {"epoch": [1, 2, 3], "val_recon_mse": [mse * 3, mse * 2, mse], "val_perplexity": [10.0, None, 30.0]}
        for epoch, value in zip(series["epoch"], series["val_recon_mse"]):
            trial.report(value, epoch)
        trial.set_user_attr(SERIES_ATTR, series)
        study.tell(trial, mse)
    old = study.ask()  # a trial of a study searched before the series were kept
    old.report(0.5, 1)
    old.report(0.4, 2)
    study.tell(old, 0.4)
    return study


def test_metric_menu_and_old_trials(tmp_path):
    figure = figures.metric_curves(_study(tmp_path), "val_recon_mse")
    labels = [button.label for button in figure.layout.updatemenus[0].buttons]
    assert labels == ["val_recon_mse", "val_perplexity"]
    by_metric = {}
    for trace, button_visible in zip(figure.data, figure.layout.updatemenus[0].buttons[1].args[0]["visible"]):
        by_metric.setdefault(button_visible, []).append(trace)
    shown = [trace for trace in figure.data if trace.visible]
    assert sorted(trace.name for trace in shown) == ["trial 0", "trial 1", "trial 2"]  # the old trial's objective
    assert [list(trace.y) for trace in shown if trace.name == "trial 2"] == [[0.5, 0.4]]
    assert len(by_metric[True]) == 2  # val_perplexity: the two trials that have series
    assert "1 trial(s) recorded before per-metric series" in figure.layout.annotations[0].text


def test_report_has_the_curves(tmp_path):
    study = _study(tmp_path)
    write_report(study, study._storage, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert 'data-figure="Metric curves"' in page and "val_perplexity" in page


def test_a_study_without_epochs(tmp_path):
    study = optuna.create_study(study_name="none", storage=f"sqlite:///{tmp_path}/none.db")
    study.enqueue_trial({})
    figure = figures.metric_curves(study)
    assert "no trial has reported an epoch yet" in str(figure.layout.annotations[0].text)
