"""Search space -> the parameters of one Optuna trial, conditionals honoured."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import optuna

from vqtune.config import CategoricalParam, FloatParam, IntParam, SearchSpace


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """Sample every parameter whose condition holds, in file order; returns ``{dotted key: value}``.

    A parameter with ``when`` is sampled only if each parameter it names was sampled and took one of the
    listed values; conditions may name parameters defined later in the file.
    """
    return _resolve(space, lambda key, param: _suggest_one(trial, key, param))


def enabled(space: SearchSpace, values: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters a trial would have if every parameter could take its value in ``values`` (one value for
    each key of the space): those whose conditions hold, by :func:`suggest`'s rule. Two value sets that differ
    only in parameters their conditions disable are the same trial."""
    return _resolve(space, lambda key, param: values[key])


def _resolve(space: SearchSpace, value_of: Callable[[str, Any], Any]) -> dict[str, Any]:
    """``{key: value_of(key, param)}`` for every parameter whose condition holds, each asked for once the
    parameters it depends on are settled, the others in file order: the rule of :func:`suggest`."""
    params: dict[str, Any] = {}
    pending = dict(space.space)
    while pending:
        progressed = False
        for key, param in list(pending.items()):
            conditions = param.when or {}
            if any(other in pending for other in conditions):
                continue  # decide once the parameters it depends on are settled
            del pending[key]
            progressed = True
            if all(other in params and params[other] in values for other, values in conditions.items()):
                params[key] = value_of(key, param)
        if not progressed:
            raise ValueError(f"conditions form a cycle among {sorted(pending)}")
    return params


def _suggest_one(trial: optuna.Trial, key: str, param) -> Any:
    if isinstance(param, IntParam):
        return trial.suggest_int(key, param.low, param.high, step=param.step, log=param.log)
    if isinstance(param, FloatParam):
        return trial.suggest_float(key, param.low, param.high, step=param.step, log=param.log)
    assert isinstance(param, CategoricalParam)
    return trial.suggest_categorical(key, param.choices)
