"""The schema of a search-space file: what ``vqtune run`` searches, how, where the study lives."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Annotated, Any, Dict, List, Literal, Mapping, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vqtune.config._conditions import active_params, condition_order, enabling_values
from vqtune.config._loading import deep_copy, error_key, format_validation_error, set_path, unknown_key
from vqtune.config._train import TrainConfig
from vqtune.errors import ConfigError
from vqtune.metrics import METRICS as METRIC_INFO
from vqtune.metrics import final_metrics, objectives

DEFAULT_STORAGE = "sqlite:///studies/vqtune.db"

# Metrics the trainer reports after every epoch that can be the objective: stage 1's, and the prior's when the
# base config has a prior section (a search over stage 2).
STAGE1_METRICS = objectives("vqvae")
STAGE2_METRICS = objectives("prior")
METRICS = tuple(dict.fromkeys(STAGE1_METRICS + STAGE2_METRICS))


MAX_STUDY_NAME = 128  # characters; a study name is also a directory name under trial_dir

MAX_COMBINATIONS = 20_000  # more, and only each value alone is checked before the search


def _values_to_check(param) -> list:
    """The values of a parameter whose combinations with the others are checked: every choice, every integer of a
    short range, the ends of a long range or of a float range."""
    if isinstance(param, IntParam) and (param.high - param.low) // param.step < 64:
        return list(range(param.low, param.high + 1, param.step))
    return param.corners()


def _invalid(base: dict, values: Mapping[str, Any]) -> Optional[str]:
    """Why ``base`` with the dotted ``values`` set is not a valid training config (None: it is)."""
    trial = deep_copy(base)
    for key, value in values.items():
        set_path(trial, key, value)
    try:
        TrainConfig.model_validate(trial)
    except ValidationError as exc:
        return format_validation_error(exc, "base", TrainConfig).split(": ", 1)[1]
    return None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Distribution(_Section):
    when: Optional[Dict[str, List[Any]]] = Field(
        None, description="Sample this parameter only when each named parameter took one of the given values."
    )


# Optuna's samplers draw integers through float64, which holds every integer up to 2^53 exactly.
MAX_SAMPLED_INT = 2**53


class IntParam(_Distribution):
    type: Literal["int"]
    low: int
    high: int
    step: int = Field(1, ge=1)
    log: bool = False

    @field_validator("low", "high")
    @classmethod
    def _sampled_exactly(cls, value: int) -> int:
        if abs(value) > MAX_SAMPLED_INT:
            raise ValueError(f"must be at most 2^53 = {MAX_SAMPLED_INT} in magnitude (Optuna draws integers through "
                             "float64); narrow the range")
        return value

    @model_validator(mode="after")
    def _valid_range(self) -> "IntParam":
        _check_range(self.low, self.high, self.log)
        if self.log and self.step != 1:
            raise ValueError("step must be 1 when log is true")
        if (self.high - self.low) % self.step:
            raise ValueError(f"step {self.step} does not divide high - low = {self.high - self.low}")
        return self

    def corners(self) -> list:
        return [self.low, self.high]


class FloatParam(_Distribution):
    type: Literal["float"]
    low: float = Field(..., allow_inf_nan=False)
    high: float = Field(..., allow_inf_nan=False)
    step: Optional[float] = Field(None, gt=0)
    log: bool = False

    @model_validator(mode="after")
    def _valid_range(self) -> "FloatParam":
        _check_range(self.low, self.high, self.log)
        if self.step is not None:
            if self.log:
                raise ValueError("step cannot be combined with log: true")
            n = (self.high - self.low) / self.step
            if not math.isclose(n, round(n), rel_tol=0, abs_tol=1e-8):
                raise ValueError(f"step {self.step} does not divide high - low = {self.high - self.low}")
        return self

    def corners(self) -> list:
        return [self.low, self.high]


def _refused_end(param: IntParam | FloatParam, key: str, base: dict) -> Optional[str]:
    """Why the training schema refuses an end of the range of ``key`` by itself (``model.codebook_size`` up to
    10^11, say), naming it ``space.KEY.high`` or ``.low``; None when both ends fit the key (whether they fit the
    other parameters is for the combinations to tell)."""
    for end in ("low", "high"):
        trial = deep_copy(base)
        set_path(trial, key, getattr(param, end))
        try:
            TrainConfig.model_validate(trial)
        except ValidationError as exc:
            if error_key(exc.errors()[0], TrainConfig) == key:
                reason = format_validation_error(exc, "base", TrainConfig).split(": ", 1)[1]
                return (f"space.{key}.{end}: space.{key} = {getattr(param, end)!r} gives an invalid training config: "
                        f"{reason}; narrow the range (vqtune config describes what {key} accepts)")
    return None


class CategoricalParam(_Distribution):
    type: Literal["categorical"]
    choices: List[Union[bool, int, float, str, None]] = Field(..., min_length=1)

    def corners(self) -> list:
        return list(self.choices)


PARAM_TYPES = {"int": IntParam, "float": FloatParam, "categorical": CategoricalParam}
Param = Annotated[Union[IntParam, FloatParam, CategoricalParam], Field(discriminator="type")]


def _check_range(low: float, high: float, log: bool) -> None:
    if low > high:
        raise ValueError(f"low ({low}) must not exceed high ({high})")
    if log and low <= 0:
        raise ValueError(f"log scale needs low > 0 (got {low})")


class Objective(_Section):
    metric: Literal[METRICS] = Field("val_recon_mse", description="The reported metric to optimize.")  # type: ignore[valid-type]
    direction: Literal["minimize", "maximize"] = "minimize"


_BOUND = re.compile(r"^\s*(\w+)\s*(<=|>=)\s*([-+0-9.eE]+)\s*$")


class Constraint(_Section):
    """A bound on a metric a trial reports, written ``rate_bits <= 4096`` or ``val_psnr >= 20``."""

    metric: str
    op: Literal["<=", ">="]
    bound: float

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value):
        if isinstance(value, str):
            found = _BOUND.match(value)
            if not found:
                raise ValueError(f"{value!r} is not a bound; write METRIC <= NUMBER or METRIC >= NUMBER, e.g. "
                                 "rate_bits <= 4096")
            try:
                bound = float(found.group(3))
            except ValueError:
                raise ValueError(f"{value!r}: {found.group(3)!r} is not a number") from None
            return {"metric": found.group(1), "op": found.group(2), "bound": bound}
        return value

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in METRIC_INFO:
            raise ValueError(f"{value!r} is not a metric vqtune reports; use one of {', '.join(METRIC_INFO)}")
        return value

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"

    def violation(self, value: float) -> float:
        """Optuna's constraint value: <= 0 when ``value`` is within the bound, else by how much it is not."""
        return value - self.bound if self.op == "<=" else self.bound - value


class Sampler(_Section):
    type: Literal["tpe", "random", "gp", "cmaes", "grid", "nsga2", "nsga3"] = "tpe"
    seed: Optional[int] = Field(None, description="Seed of the sampler (null: a fresh random search).")
    options: Dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the Optuna sampler.")


class Pruner(_Section):
    type: Literal["median", "hyperband", "successive_halving", "pareto", "none"] = Field(
        "median",
        description="Optuna's median, hyperband or successive_halving on the objective, or none; a two-stage "
        "search has median (vqtune's rule of bounds on the two stages, with the median pruner's options) or none; a "
        "multi-objective search has pareto (the default there: vqtune's rule on the objective vectors) or none.",
    )
    options: Dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments of the Optuna pruner; for pareto: n_startup_trials (other trials that must "
        "have reached the epoch, default 4), n_warmup_steps (epochs before it applies, default 1) and fraction "
        "(of those trials that must dominate the trial, default 0.5).",
    )


class PerplexityRule(_Section):
    """Prune a trial whose codebook collapsed: val perplexity / codebook size below ``floor`` after warm-up."""

    floor: float = Field(0.02, ge=0.0, le=1.0, description="Fraction of the codebook size (0 disables the rule).")
    warmup_epochs: int = Field(2, ge=0, description="Epochs before the rule applies.")


class Storage(_Section):
    url: str = Field(DEFAULT_STORAGE, description="SQLAlchemy URL of the study database.")
    heartbeat_interval: int = Field(10, ge=1, description="Seconds between heartbeats of running trials.")
    grace_period: int = Field(60, ge=2, description="Seconds without a heartbeat after which a trial is stale.")

    @model_validator(mode="after")
    def _grace_outlasts_beats(self) -> "Storage":
        if self.grace_period < 2 * self.heartbeat_interval:
            raise ValueError(
                f"storage.grace_period ({self.grace_period} s) must be at least twice storage.heartbeat_interval "
                f"({self.heartbeat_interval} s), or live trials would be taken for dead ones"
            )
        return self


class Resources(_Section):
    cpu: float = Field(1.0, gt=0, description="CPUs per trial.")
    gpu: Union[float, Literal["auto"]] = Field(
        "auto", description="GPUs per trial: a number, a fraction, or auto (1/trials_per_gpu when GPUs exist)."
    )
    trials_per_gpu: int = Field(2, ge=1, description="With gpu: auto, how many trials share one GPU.")
    max_restarts: int = Field(
        2, ge=0, description="Times Ray runs a trial again after its worker process died (from its last epoch)."
    )

    @field_validator("gpu")
    @classmethod
    def _non_negative(cls, value):
        if value != "auto" and value < 0:
            raise ValueError("must be >= 0 or auto")
        return value


class SearchSpace(_Section):
    """A search-space file for ``vqtune run``."""

    study: str = Field(..., min_length=1, description="Study name in the storage: 1 to 128 printable characters "
                       "(255 bytes as UTF-8), no / or \\, not . or .., no space at either end, not starting with -.")
    objective: Objective = Field(default_factory=Objective)
    objectives: Optional[List[Objective]] = Field(
        None, min_length=2, max_length=3,
        description="2 or 3 objectives (metric and direction each) instead of objective: a multi-objective study "
        "whose answer is a Pareto front.",
    )
    constraints: List[Constraint] = Field(
        default_factory=list,
        description="Bounds on reported metrics, e.g. 'rate_bits <= 4096': a trial outside them is infeasible and "
        "never best or Pareto-optimal.",
    )
    n_trials: int = Field(20, ge=1, description="Finished (complete + pruned) trials to reach.")
    sampler: Sampler = Field(default_factory=Sampler)
    pruner: Pruner = Field(default_factory=Pruner)
    perplexity: PerplexityRule = Field(default_factory=PerplexityRule)
    storage: Storage = Field(default_factory=Storage)
    resources: Resources = Field(default_factory=Resources)
    trial_dir: Path = Field(Path("studies/trials"), description="Run directories of the trials, per study.")
    artifact_dir: Optional[Path] = Field(
        None,
        description="Optuna artifact store (default: artifacts/ next to a SQLite database, else studies/artifacts).",
    )
    max_concurrent: Optional[int] = Field(None, ge=1, description="Trials at once (null: as resources allow).")
    snapshot_every: int = Field(
        5, ge=0, description="Every this many epochs a trial uploads its curves and its reconstructions "
        "(curves-epochNNN.png, reconstructions-epochNNN.png) to the artifact store; 0: only at its end.",
    )
    tensorboard: bool = Field(
        True, description="Write TensorBoard event files of every metric of every trial under trial_dir/STUDY "
        "(Ray's TensorBoard logger; needs tensorboardX, which ray[tune] brings; vqtune run --no-tensorboard: off).",
    )
    base: TrainConfig = Field(default_factory=TrainConfig, description="The training config every trial starts from.")
    space: Dict[str, Param] = Field(..., min_length=1, description="Dotted config keys mapped to distributions.")

    @field_validator("storage", mode="before")
    @classmethod
    def _url_shorthand(cls, value):
        return {"url": value} if isinstance(value, str) else value

    @field_validator("study")
    @classmethod
    def check_study_name(cls, name: str) -> str:
        """``name`` when it can name a study; a ValueError saying which rule it breaks. A study name becomes a
        directory under trial_dir and is printed by every command, so it is a name: never a path or a control
        sequence."""
        if not name.isprintable():
            problem = "holds a character that does not print (a control character, a line break)"
        elif len(name) > MAX_STUDY_NAME or len(name.encode("utf-8")) > 255:
            problem = f"is longer than {MAX_STUDY_NAME} characters (or 255 bytes as UTF-8)"
        elif "/" in name or "\\" in name:
            problem = "holds a / or \\ (a study name is a name, not a path)"
        elif name in (".", ".."):
            problem = "is . or .."
        elif name != name.strip():
            problem = "starts or ends with a space"
        elif name.startswith("-"):
            problem = "starts with - (it would read as an option)"
        else:
            return name
        raise ValueError(f"a study name {problem}; use 1 to {MAX_STUDY_NAME} printable characters without / or \\, "
                         "e.g. letters, digits, '.', '-' and '_'")

    @model_validator(mode="after")
    def _conditions_name_parameters(self) -> "SearchSpace":
        for key, param in self.space.items():
            for other, values in (param.when or {}).items():
                if other not in self.space:
                    raise ValueError(f"space.{key}.when: {other!r} is not a parameter of this space "
                                     f"(parameters: {', '.join(sorted(self.space))})")
                if other == key:
                    raise ValueError(f"space.{key}.when: a parameter cannot depend on itself")
                if not values:
                    raise ValueError(f"space.{key}.when.{other}: give at least one value")
        condition_order(self.space)  # a cycle of conditions is refused here
        if self.sampler.type == "grid":
            for key, param in self.space.items():
                if isinstance(param, FloatParam) and param.step is None:
                    raise ValueError(f"space.{key}: the grid sampler needs a step for float parameters")
        return self

    @model_validator(mode="after")
    def _objectives_are_reported(self) -> "SearchSpace":
        if self.objectives is not None and "objective" in self.model_fields_set:
            raise ValueError("objective: give objective (one metric) or objectives (2 or 3), not both")
        stages, levels = self.base.stages, self.base.model.levels
        allowed = objectives(stages[-1], levels)
        what = {"vqvae": "a VQ-VAE search", "prior": "a prior search"}[stages[-1]]
        if len(stages) == 2:
            what = "a two-stage search (its trials end with the prior)"
        named = [("objective", self.objective)] if self.objectives is None else [
            (f"objectives.{i}", objective) for i, objective in enumerate(self.objectives)]
        for key, objective in named:
            if objective.metric not in allowed:
                hint = " (needs a base.prior section)" if stages == ("vqvae",) and objective.metric in STAGE2_METRICS else ""
                raise ValueError(f"{key}.metric: {objective.metric} is not reported at the end of {what}{hint}; "
                                 f"use one of {', '.join(allowed)}")
        metrics = [objective.metric for _, objective in named]
        if len(set(metrics)) < len(metrics):
            raise ValueError(f"objectives: {', '.join(metrics)} names a metric twice; give each once")
        known = final_metrics(stages, levels)
        for i, constraint in enumerate(self.constraints):
            if constraint.metric not in known:
                raise ValueError(f"constraints.{i}: {constraint} bounds {constraint.metric}, which the trials of this "
                                 f"search never report; bound one of {', '.join(known)}")
        if self.is_multi_objective and self.sampler.type == "cmaes":
            raise ValueError("sampler.type: cmaes optimizes one objective; a multi-objective search takes tpe, "
                             "nsga2, nsga3, gp, random or grid")
        if len(stages) == 2 and self.pruner.type in ("hyperband", "successive_halving"):
            raise ValueError(f"pruner.type: {self.pruner.type} compares point values at its rungs, and a two-stage "
                             "trial's stage-1 value is only an upper bound of what its prior will make of it; use "
                             "median (vqtune's rule of bounds across the two stages) or none")
        if not self.is_multi_objective and self.pruner.type == "pareto":
            raise ValueError("pruner.type: pareto prunes multi-objective searches; with one objective use median, "
                             "hyperband, successive_halving or none")
        if self.is_multi_objective and self.pruner.type not in ("pareto", "none"):
            if "pruner" in self.model_fields_set and "type" in self.pruner.model_fields_set:
                raise ValueError(f"pruner.type: {self.pruner.type} prunes on one objective (Optuna's pruners cannot "
                                 "prune a multi-objective study); use pareto or none")
            self.pruner = Pruner(type="pareto", options=self.pruner.options)
        return self

    @property
    def is_multi_objective(self) -> bool:
        return self.objectives is not None

    @property
    def goals(self) -> List[Objective]:
        """The objectives of the study, one or several."""
        return list(self.objectives) if self.objectives is not None else [self.objective]

    @model_validator(mode="after")
    def _range_ends_fit_their_keys(self) -> "SearchSpace":
        base = self.base.model_dump(mode="json")
        for key, param in self.space.items():
            if isinstance(param, (IntParam, FloatParam)) and not unknown_key(key, TrainConfig):
                problem = _refused_end(param, key, base)
                if problem:
                    raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _space_keys_are_config_keys(self) -> "SearchSpace":
        base = self.base.model_dump(mode="json")
        for key, param in self.space.items():
            problem = unknown_key(key, TrainConfig)
            if problem:
                raise ValueError(f"space.{key}: not a training config key: {problem}")
            # Each end of a range (each choice) must give a valid training config on its own, with the parameters
            # its when-conditions name at a value that makes it sampled.
            for value in param.corners():
                trial = deep_copy(base)
                for other, allowed in enabling_values(self.space, key).items():
                    set_path(trial, other, allowed)
                set_path(trial, key, value)
                try:
                    TrainConfig.model_validate(trial)
                except ValidationError as exc:
                    reason = format_validation_error(exc, "base", TrainConfig).split(": ", 1)[1]
                    raise ValueError(f"space.{key} = {value!r} gives an invalid training config: {reason}") from None
        return self

    @model_validator(mode="after")
    def _combinations_are_valid(self) -> "SearchSpace":
        """Each value is checked alone above; here every combination of them, where their number allows (a
        resolution of one trial and a downsampling of another may not fit together)."""
        keys = list(self.space)
        grids = [_values_to_check(self.space[key]) for key in keys]
        if len(keys) < 2 or math.prod(len(g) for g in grids) > MAX_COMBINATIONS:
            return self
        base, seen = self.base.model_dump(mode="json"), set()
        for combination in itertools.product(*grids):
            values = dict(zip(keys, combination))
            enabled = active_params(self.space, values)
            active = {key: value for key, value in values.items() if key in enabled}  # in file order
            frozen = tuple(sorted((key, repr(value)) for key, value in active.items()))
            if len(active) < 2 or frozen in seen:
                continue
            seen.add(frozen)
            reason = _invalid(base, active)
            if reason is None:
                continue
            for key in list(active):  # name only the parameters that clash: drop each the clash survives without
                fewer = {k: v for k, v in active.items() if k != key}
                if _invalid(base, fewer) is not None:
                    active = fewer
            together = ", ".join(f"{key} = {value!r}" for key, value in active.items())
            raise ValueError(f"space: {together} together give an invalid training config: {_invalid(base, active)}; "
                             "narrow the ranges or add when: conditions")
        return self

    def trial_config(self, params: Mapping[str, Any]) -> TrainConfig:
        """The base config with the dotted ``params`` of one trial set; a ConfigError naming the parameters when
        they do not make a valid config together."""
        data = self.base.model_dump(mode="json")
        for key, value in params.items():
            set_path(data, key, value)
        try:
            return TrainConfig.model_validate(data)
        except ValidationError as exc:
            reason = format_validation_error(exc, "base", TrainConfig).split(": ", 1)[1]
            together = ", ".join(f"{key} = {value!r}" for key, value in params.items())
            raise ConfigError(f"the trial's parameters {together} give an invalid training config: {reason}") from None
