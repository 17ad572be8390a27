"""Parameter importances in the report: only once 10 trials have completed, and saying from how many."""

import optuna
from optuna.distributions import FloatDistribution, IntDistribution

from vqtune.report._figures import param_importances


def _add(study, n, state=optuna.trial.TrialState.COMPLETE):
    for i in range(n):
        lr, hidden = 1e-3 * (1 + i % 5), 8 + 8 * (i % 3)
        study.add_trial(optuna.trial.create_trial(
            params={"optim.lr": lr, "model.hidden": hidden},
            distributions={"optim.lr": FloatDistribution(1e-4, 1e-1, log=True), "model.hidden": IntDistribution(8, 64)},
            value=lr * 10 + hidden / 1000 if state == optuna.trial.TrialState.COMPLETE else None,
            state=state, intermediate_values={0: 1.0} if state == optuna.trial.TrialState.PRUNED else None))


def test_importances_wait_for_ten_complete_trials():
    study = optuna.create_study()
    _add(study, 9)
    _add(study, 3, optuna.trial.TrialState.PRUNED)  # pruned trials have no value to explain
    figure = param_importances(study)
    assert [a.text for a in figure.layout.annotations] == ["needs 10 complete trials, the study has 9: 1 more to go"]
    assert not figure.data

    _add(study, 1)
    figure = param_importances(study)
    assert figure.layout.title.text == "Parameter importances, from 10 complete trials"
    assert set(figure.data[0].y) == {"optim.lr", "model.hidden"}
