"""YAML (always safe-loaded) -> validated config, ``--set key=value`` overrides, one-line errors."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Type, TypeVar

import yaml
from pydantic import BaseModel, Tag, ValidationError

from vqtune.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: Path) -> dict:
    """Safe-load a YAML mapping; an empty file is an empty mapping."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc.__class__.__name__}); pass a YAML file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f": line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: {_yaml_problem(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong with a YAML text and how to fix it; a Python tag is refused, never constructed."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if isinstance(exc, yaml.constructor.ConstructorError) and "for the tag" in problem:
        tag = problem.rsplit(" ", 1)[-1].strip("'").replace("tag:yaml.org,2002:", "!!")
        return (f"malformed YAML (tag {tag} is not allowed: YAML is read safely, as mappings, lists, strings, "
                "numbers, booleans and null only); remove the tag")
    return f"malformed YAML ({problem}); fix the YAML syntax there"


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str], schema: Type[BaseModel]) -> dict:
    """Return a copy of ``data`` with each ``dotted.key=value`` set; values are parsed as YAML scalars."""
    result = deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set model.codebook_size=256")
        _check_path(key, schema)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: cannot parse value {raw!r}: {_yaml_problem(exc)}") from None
        set_path(result, key, value)
    return result


def validate(
    schema: Type[M],
    data: Mapping[str, Any],
    source: str,
    tags: Mapping[str, type] | None = None,
    overrides: Iterable[str] = (),
) -> M:
    """Validate ``data`` against ``schema``; errors become one-line ``ConfigError``s naming the key.

    ``tags`` maps discriminator tags of tagged unions (``int``, ``float``, ...) to their models, so that a
    message names ``space.optim.lr.low`` rather than ``space.optim.lr.float.low``. An error in a key that one
    of the ``--set`` ``overrides`` set names that override instead of ``source``.
    """
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, schema, tags or {}, overrides)) from None


def format_validation_error(
    exc: ValidationError,
    source: str,
    schema: Type[BaseModel],
    tags: Mapping[str, type] | None = None,
    overrides: Iterable[str] = (),
) -> str:
    tags = tags or {}
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = list(first["loc"])
    tagged = next((tags[str(part)] for part in loc if str(part) in tags), None)
    loc = [part for part in loc if str(part) not in tags]
    loc = _untag(schema, loc)[0]
    location = ".".join(str(part) for part in loc)
    message = first["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    others = _kinds_with_key(schema, list(first["loc"])) if first["type"] == "extra_forbidden" else None
    if others:  # a key of another kind of the section: the fix is that kind (or no key)
        section, (field, kinds) = ".".join(str(part) for part in loc[:-1]), others
        message = (f"applies to {section}.{field} {' or '.join(kinds)} only; remove it or set "
                   f"{section}.{field}: {kinds[0]}")
    elif first["type"] == "extra_forbidden":
        allowed = sorted(tagged.model_fields) if tagged else _allowed_keys(schema, first["loc"][:-1])
        message = f"unknown key; valid keys here: {', '.join(allowed)}"
    elif ("input" in first and first["type"] not in ("missing",) and not isinstance(first["input"], (dict, list))
          and not location.startswith("storage")):  # a storage value may hold a password: never echoed (nor below)
        message = f"{message} (got {first['input']!r})"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    for item in overrides:
        key = item.partition("=")[0].strip()
        if location == key or location.startswith(key + "."):
            source = f"--set {key}=..." if key.startswith("storage") else f"--set {item}"
    where = f"{source}: {location}: " if location else f"{source}: "
    return f"{where}{message}{more}"


def error_key(error: Mapping[str, Any], schema: Type[BaseModel]) -> str:
    """The dotted key one of pydantic's ``errors()`` of ``schema`` is about, without the tags of sections of
    kinds (``quantizer.beta``, not ``quantizer.vq.beta``)."""
    return ".".join(str(part) for part in _untag(schema, list(error["loc"]))[0])


def _allowed_keys(schema: Type[BaseModel], loc: tuple) -> list[str]:
    model = _untag(schema, list(loc))[1]
    return sorted(model.model_fields) if model is not None else []


def _kinds(annotation: Any) -> dict[str, Type[BaseModel]]:
    """The sections of a union discriminated by ``Tag`` (a section of kinds, such as ``prior``), by tag."""
    found: dict[str, Type[BaseModel]] = {}
    stack = [annotation]
    while stack:
        candidate = stack.pop()
        args = typing.get_args(candidate)
        if typing.get_origin(candidate) is typing.Annotated and isinstance(args[0], type):
            found.update({meta.tag: args[0] for meta in candidate.__metadata__ if isinstance(meta, Tag)})
        stack.extend(args)
    return found


def _untag(schema: Type[BaseModel], loc: list) -> tuple[list, Optional[Type[BaseModel]]]:
    """An error location without the tags of sections of kinds (``prior.pixelcnn.kernel`` -> ``prior.kernel``),
    and the section it ends in (the kind the tag names), or None past the sections."""
    model: Optional[Type[BaseModel]] = schema
    kinds: dict[str, Type[BaseModel]] = {}
    kept = []
    for part in loc:
        if str(part) in kinds:
            model, kinds = kinds[str(part)], {}
            continue
        kept.append(part)
        field = model.model_fields.get(str(part)) if model is not None else None
        kinds = _kinds(field.annotation) if field is not None else {}
        model = _sub_model(model, str(part))
    return kept, model


def _kinds_with_key(schema: Type[BaseModel], loc: list) -> Optional[tuple[str, list[str]]]:
    """For the location of a key that its section of kinds refuses (``quantizer.fsq.beta``): the field that names
    the kind (``kind``) and the other kinds that have the key (``vq``); None when no other kind has it."""
    model: Optional[Type[BaseModel]] = schema
    kinds: dict[str, Type[BaseModel]] = {}
    for index, part in enumerate(loc[:-1]):
        if str(part) in kinds and index == len(loc) - 2:
            others = [tag for tag, section in kinds.items() if tag != str(part) and loc[-1] in section.model_fields]
            chosen = kinds[str(part)]
            field = next((name for name, info in chosen.model_fields.items()
                          if typing.get_args(info.annotation) == (str(part),)), "kind")
            return (field, others) if others else None
        field_info = model.model_fields.get(str(part)) if model is not None else None
        kinds = _kinds(field_info.annotation) if field_info is not None and str(part) not in kinds else {}
        model = _sub_model(model, str(part))
    return None


def _sub_model(model: Optional[Type[BaseModel]], name: str) -> Optional[Type[BaseModel]]:
    if model is None or name not in model.model_fields:
        return None
    annotation = model.model_fields[name].annotation
    # Optional[Section] is a union of the section and None; a section of kinds is an Annotated union of them
    # (its keys here: those of its first kind, the default)
    candidates = [annotation]
    while candidates:
        candidate = candidates.pop(0)
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        if typing.get_origin(candidate) is dict:  # a mapping of sections (space:) is no section itself
            continue
        candidates.extend(typing.get_args(candidate))
    return None


def unknown_key(key: str, schema: Type[BaseModel]) -> Optional[str]:
    """Why the dotted ``key`` names no field of ``schema`` (listing the valid keys), or None when it does."""
    models: list[Type[BaseModel]] = [schema]  # a section of kinds: each kind, its keys all valid here
    parts = key.split(".")
    for depth, part in enumerate(parts):
        fields = {name: info for model in models for name, info in model.model_fields.items()}
        if not models or part not in fields:
            parent = ".".join(parts[:depth]) or "the top level"
            valid = ", ".join(sorted(fields)) if models else "none (not a section)"
            return f"unknown key {part!r} in {parent}; valid keys: {valid}"
        if depth < len(parts) - 1:
            kinds = _kinds(fields[part].annotation)
            sub = _sub_model(next(model for model in models if part in model.model_fields), part)
            if sub is None and getattr(fields[part].annotation, "__origin__", None) is dict:
                if depth == len(parts) - 2:
                    return None  # one key of a free-form mapping, such as sampler.options.n_startup_trials
                return f"{'.'.join(parts[: depth + 1])} cannot be changed key by key with --set; edit the file"
            models = list(kinds.values()) if kinds else [sub] if sub is not None else []
    return None


def set_path(data: dict, key: str, value: Any) -> None:
    """Set the dotted ``key`` of the nested mapping ``data`` to ``value``, creating sections on the way."""
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _check_path(key: str, schema: Type[BaseModel]) -> None:
    problem = unknown_key(key, schema)
    if problem:
        raise ConfigError(f"--set {key}: {problem}")


def deep_copy(data: Mapping[str, Any]) -> dict:
    return {k: deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}
