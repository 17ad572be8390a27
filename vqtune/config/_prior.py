"""The schema of stage 2: one section per prior kind, chosen by ``prior.kind`` (``pixelcnn`` when missing).

A new kind is a new class here, with the options of its architecture, in ``PRIOR_KINDS`` (the union of the
``prior`` section follows), and a class of the same name in ``vqtune.models.PRIORS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Dict, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, field_validator

from vqtune.config._bounds import MAX_BATCH, MAX_CHANNELS, MAX_EPOCHS

DEFAULT_KIND = "pixelcnn"


class _PriorSection(BaseModel):
    """What every prior kind shares: the codes it learns and how it is trained."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    kind: str = Field(DEFAULT_KIND, description="The prior's architecture.")  # each kind narrows it to its own name
    vqvae_checkpoint: Optional[Path] = Field(
        None,
        description="Stage-1 checkpoint to encode the data with (default: train stage 1 first and use its best.pt). "
        "Its own data settings are used, so the codes match what it was trained on.",
    )
    lr: float = Field(3e-4, gt=0.0, le=1.0, description="Adam learning rate.")
    batch_size: int = Field(64, ge=1, le=MAX_BATCH, description="Code grids per training step (at most 2^16).")
    epochs: int = Field(10, ge=1, le=MAX_EPOCHS, description="Passes over the training codes (at most 10^6).")
    weight_decay: float = Field(0.0, ge=0.0, description="Adam weight decay.")
    grad_clip: Optional[float] = Field(None, gt=0.0, description="Clip the gradient norm to this value.")

    def architecture(self) -> Dict[str, Any]:
        """The options of this kind's model (the keys beyond ``kind`` and those every kind shares): what
        ``vqtune.models.PRIORS[kind].from_options`` takes."""
        shared = set(_PriorSection.model_fields) | {"kind"}
        return {name: getattr(self, name) for name in type(self).model_fields if name not in shared}


class PixelCNNPriorConfig(_PriorSection):
    """Stage 2: a Gated PixelCNN prior over the code grids of a trained VQ-VAE."""

    kind: Literal["pixelcnn"] = Field("pixelcnn", description="The prior's architecture: pixelcnn (Gated PixelCNN).")
    channels: int = Field(64, ge=4, le=MAX_CHANNELS,
                          description=f"Width of the vertical and horizontal stacks (4 to {MAX_CHANNELS}).")
    layers: int = Field(8, ge=1, le=64, description="Gated layers (the first masked A, the rest B).")
    kernel: int = Field(3, ge=3, le=9, description="Odd kernel size of the stacks.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the horizontal stack.")

    @field_validator("kernel")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError("must be odd (3, 5, 7 or 9)")
        return value


# kind -> section. A new kind: one line here.
PRIOR_KINDS = {"pixelcnn": PixelCNNPriorConfig}

# The default section, and the one ``vqtune.config.PriorConfig`` names.
PriorConfig = PixelCNNPriorConfig


def _kind_of(value: Any) -> str:
    """The tag of a ``prior`` section: its ``kind``, or the default kind when it names none."""
    kind = value.get("kind", DEFAULT_KIND) if isinstance(value, dict) else getattr(value, "kind", DEFAULT_KIND)
    return kind if kind in PRIOR_KINDS else None


# The ``prior`` section: one of the kinds, discriminated on ``kind``.
PriorSection = Annotated[
    Union[tuple(Annotated[section, Tag(kind)] for kind, section in PRIOR_KINDS.items())],
    Discriminator(_kind_of, custom_error_type="prior_kind",
                  custom_error_message=f"unknown kind; prior.kind is one of: {', '.join(PRIOR_KINDS)}"),
]


def prior_config(data: Any) -> _PriorSection:
    """The section of ``data``'s kind (``pixelcnn`` when it names none), validated: as ``prior:`` of a config is."""
    return TypeAdapter(PriorSection).validate_python(data)
