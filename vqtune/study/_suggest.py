"""Search space -> the parameters of one Optuna trial, conditionals honoured."""

from __future__ import annotations

from typing import Any, Mapping

import optuna

from vqtune.config import CategoricalParam, FloatParam, IntParam, SearchSpace, active_params, resolve_when


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """Sample every enabled parameter, in the order conditions are decided (file order, a parameter after those
    its ``when`` names); returns ``{dotted key: value}``.

    A parameter with ``when`` is sampled only if each parameter it names was sampled and took one of the
    listed values (:func:`vqtune.config.resolve_when`); conditions may name parameters defined later in the file.
    """
    return resolve_when(space.space, lambda key, param: _suggest_one(trial, key, param))


def enabled(space: SearchSpace, values: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters a trial would have if every parameter could take its value in ``values`` (one value for
    each key of the space): those whose conditions hold, by :func:`suggest`'s rule
    (:func:`vqtune.config.active_params`). Two value sets that differ only in parameters their conditions
    disable are the same trial."""
    return active_params(space.space, values)


def _suggest_one(trial: optuna.Trial, key: str, param) -> Any:
    if isinstance(param, IntParam):
        return trial.suggest_int(key, param.low, param.high, step=param.step, log=param.log)
    if isinstance(param, FloatParam):
        return trial.suggest_float(key, param.low, param.high, step=param.step, log=param.log)
    assert isinstance(param, CategoricalParam)
    return trial.suggest_categorical(key, param.choices)
