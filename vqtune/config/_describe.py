"""A config as commented YAML: every key with its value and, from the schema, what it means."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel


def describe(config: BaseModel) -> str:
    """YAML of ``config`` with each key's schema description as a comment; it loads back to ``config``."""
    return "\n".join(_lines(config, indent=0)) + "\n"


def _lines(model: BaseModel, indent: int) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            doc = (type(value).__doc__ or "").strip().splitlines()[0]
            lines.append(f"{pad}{name}:  # {doc}")
            lines.extend(_lines(value, indent + 1))
            continue
        comment = f"  # {field.description}" if field.description else ""
        lines.append(f"{pad}{name}: {_scalar(value)}{comment}")
    return lines


def _scalar(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value)  # JSON scalars and lists are valid YAML
