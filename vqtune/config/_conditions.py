"""The rule of conditional parameters (``when:`` in a search-space file), written once.

A parameter with ``when: {other: [values]}`` is **enabled** only when every parameter it names is itself
enabled and took one of the listed values. A disabled parameter has no value in the trial, so it enables
nothing: in a chain ``a -> b -> c``, ``c`` is disabled whenever ``b`` is, whatever value ``b`` would have
had. Validation, suggestion, the grid and the dry run all ask :func:`resolve_when` (or :func:`active_params`).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping


def condition_order(params: Mapping[str, Any]) -> List[str]:
    """The keys of ``params`` (``{dotted key: distribution}``) in the order their conditions are decided:
    repeated sweeps in file order, each key taken once every parameter its ``when`` names is taken (so a
    condition may name a parameter defined later in the file). A ValueError when conditions form a cycle."""
    order: List[str] = []
    pending = dict(params)
    while pending:
        progressed = False
        for key, param in list(pending.items()):
            if any(other in pending for other in (param.when or {})):
                continue  # decide once the parameters it depends on are settled
            del pending[key]
            order.append(key)
            progressed = True
        if not progressed:
            raise ValueError(f"space: the when-conditions of {', '.join(sorted(pending))} form a cycle")
    return order


def resolve_when(params: Mapping[str, Any], value_of: Callable[[str, Any], Any]) -> Dict[str, Any]:
    """``{key: value_of(key, param)}`` for every enabled parameter, each asked for once, in
    :func:`condition_order`: a parameter is enabled when each parameter its ``when`` names is enabled and its
    value is one of the allowed ones."""
    values: Dict[str, Any] = {}
    for key in condition_order(params):
        conditions = params[key].when or {}
        if all(other in values and values[other] in allowed for other, allowed in conditions.items()):
            values[key] = value_of(key, params[key])
    return values


def active_params(params: Mapping[str, Any], values: Mapping[str, Any]) -> Dict[str, Any]:
    """The enabled parameters and their values, given a value for each parameter (``values``; a disabled one
    may lack its value). Two value sets that differ only in parameters their conditions disable are the same
    trial. Keys in :func:`condition_order`."""
    return resolve_when(params, lambda key, param: values[key])


def enabling_values(params: Mapping[str, Any], key: str) -> Dict[str, Any]:
    """A value for each parameter that ``key``'s conditions name, directly or through others, that lets ``key``
    be enabled (the first value each condition allows)."""
    values: Dict[str, Any] = {}
    pending = [key]
    while pending:
        for other, allowed in (params[pending.pop()].when or {}).items():
            if other not in values:
                values[other] = allowed[0]
                pending.append(other)
    return values
