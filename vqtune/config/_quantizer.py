"""The schema of the quantizer: one section per kind, chosen by ``quantizer.kind`` (``vq`` when missing), so that
an option of another kind is refused by the schema itself.

A new kind is a new class here, with its own options, in ``QUANTIZER_KINDS`` (the union of the ``quantizer``
section follows), and a class of the same name in ``vqtune.models.QUANTIZERS`` whose ``from_options`` takes
what :meth:`options` gives.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Dict, List, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, TypeAdapter, field_validator

from vqtune.config._bounds import MAX_CHANNELS, MAX_CODEBOOK, MAX_STEPS

DEFAULT_KIND = "vq"
DEFAULT_FSQ_LEVELS = [8, 5, 5, 5]  # K = 1000 (the FSQ paper's recommended levels for about 2^10 codes)
KIND_DESCRIPTION = ("vq: nearest code of a learned codebook of model.codebook_size codes; fsq: finite scalar "
                    "quantization, K = the product of levels, no codebook (nothing to collapse).")


class _QuantizerSection(BaseModel):
    """What every quantizer kind shares: its name, and the options it hands to its model class."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    kind: str = Field(DEFAULT_KIND, description=KIND_DESCRIPTION)  # each kind narrows it
    # where K comes from, for a kind whose K is its own (:meth:`own_codebook_size`)
    codebook_size_from: ClassVar[str] = "model.codebook_size"

    def options(self) -> Dict[str, Any]:
        """The plain options ``vqtune.models.QUANTIZERS[kind].from_options`` takes (every key but ``kind``)."""
        return {name: getattr(self, name) for name in type(self).model_fields if name != "kind"}

    def own_codebook_size(self) -> Optional[int]:
        """K when the kind fixes it itself; None: K is ``model.codebook_size``."""
        return None


class VQConfig(_QuantizerSection):
    """How the encoder outputs become codes: the nearest code of a learned codebook (kind: vq)."""

    kind: Literal["vq"] = Field("vq", description=KIND_DESCRIPTION)
    beta: float = Field(0.25, gt=0.0, le=10.0, description="vq: commitment cost (paper: 0.25, robust 0.1-2.0).")
    ema: bool = Field(True, description="vq: update the codebook by exponential moving averages instead of its loss.")
    decay: float = Field(0.99, ge=0.0, lt=1.0, description="vq: EMA decay gamma.")
    eps: float = Field(1e-5, gt=0.0, description="vq: Laplace smoothing of the EMA cluster sizes.")
    dead_code_steps: int = Field(
        50, ge=0, le=MAX_STEPS, description="vq: re-seed codes unused for this many training steps (0: never; at most "
        "10^9)."
    )
    kmeans_init: bool = Field(False, description="vq: initialise the codebook by k-means on the first batch.")
    codebook_dim: Optional[int] = Field(
        None, ge=1, le=MAX_CHANNELS, description="vq: look codes up in this many dimensions (at most "
        f"{MAX_CHANNELS}) through a learned projection of the encoder output (and back); null: model.embedding_dim, "
        "no projection."
    )
    normalize: bool = Field(
        False, description="vq: l2-normalise encoder outputs and codes before the nearest-code search and in the "
        "losses (cosine codes)."
    )
    estimator: Literal["straight_through", "rotation"] = Field(
        "straight_through", description="vq: how the decoder's gradient reaches the encoder: copied "
        "(straight_through) or rotated and scaled from the code to the encoder output (rotation)."
    )


class FSQConfig(_QuantizerSection):
    """How the encoder outputs become codes: finite scalar quantization (kind: fsq), no codebook to learn."""

    codebook_size_from: ClassVar[str] = "the product of quantizer.levels"

    kind: Literal["fsq"] = Field("fsq", description=KIND_DESCRIPTION)
    levels: Optional[List[int]] = Field(
        None, description="fsq: levels per channel, e.g. [8, 5, 5, 5] (K = 1000) or the string '8,5,5,5', their "
        "product K at most 2^20; null: [8, 5, 5, 5]."
    )

    @field_validator("levels", mode="before")
    @classmethod
    def _levels_from_text(cls, value):
        if isinstance(value, str):  # a search space's categorical choice, or --set quantizer.levels=8,5,5,5
            try:
                return [int(part) for part in value.replace("[", "").replace("]", "").split(",")]
            except ValueError:
                raise ValueError(f"{value!r} is not a list of integers; write e.g. [8, 5, 5, 5] or '8,5,5,5'")
        return value

    @field_validator("levels")
    @classmethod
    def _at_least_two(cls, value):
        if value is not None and (not value or min(value) < 2):
            raise ValueError("give one integer >= 2 per channel, e.g. [8, 5, 5, 5]")
        if value is not None and math.prod(value) > MAX_CODEBOOK:
            raise ValueError(f"the product of the levels, K = {math.prod(value)}, must be at most 2^20 = "
                             f"{MAX_CODEBOOK}; use fewer channels or fewer levels")
        return value

    @property
    def fsq_levels(self) -> List[int]:
        """The levels of the quantizer (the default when unset)."""
        return list(self.levels) if self.levels is not None else list(DEFAULT_FSQ_LEVELS)

    def options(self) -> Dict[str, Any]:
        return {"levels": self.fsq_levels}

    def own_codebook_size(self) -> Optional[int]:
        """The product of the levels."""
        return math.prod(self.fsq_levels)


# kind -> section. A new kind: one line here.
QUANTIZER_KINDS = {"vq": VQConfig, "fsq": FSQConfig}


def _kind_of(value: Any) -> Optional[str]:
    kind = value.get("kind", DEFAULT_KIND) if isinstance(value, dict) else getattr(value, "kind", DEFAULT_KIND)
    return kind if kind in QUANTIZER_KINDS else None


def _without_other_kinds_defaults(value: Any) -> Any:
    """A section as configs written before the kinds had their own sections hold it (every key of every kind,
    those of the other kinds at their defaults): those keys are dropped. A key of another kind at any other
    value is left for the schema to refuse."""
    kind = _kind_of(value)
    if not isinstance(value, dict) or kind is None:
        return value
    own = QUANTIZER_KINDS[kind].model_fields
    defaults = {name: field.default for section in QUANTIZER_KINDS.values() if section is not QUANTIZER_KINDS[kind]
                for name, field in section.model_fields.items() if name not in own}
    return {key: item for key, item in value.items() if not (key in defaults and item == defaults[key])}


# The ``quantizer`` section: one of the kinds, discriminated on ``kind``.
QuantizerConfig = Annotated[
    Union[tuple(Annotated[section, Tag(kind)] for kind, section in QUANTIZER_KINDS.items())],
    Discriminator(_kind_of, custom_error_type="quantizer_kind",
                  custom_error_message=f"unknown kind; quantizer.kind is one of: {', '.join(QUANTIZER_KINDS)}"),
    BeforeValidator(_without_other_kinds_defaults),
]


def quantizer_config(data: Any) -> _QuantizerSection:
    """The section of ``data``'s kind (``vq`` when it names none), validated as ``quantizer:`` of a config is."""
    return TypeAdapter(QuantizerConfig).validate_python(data)
