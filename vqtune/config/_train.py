"""The schema of one training run: the single source of every default and allowed range."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional, Tuple, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vqtune.config._bounds import MAX_BATCH, MAX_CHANNELS, MAX_CODEBOOK, MAX_EPOCHS, MAX_SEED
from vqtune.config._data import DataConfig, DataSection
from vqtune.config._prior import PriorSection
from vqtune.config._quantizer import DEFAULT_KIND as DEFAULT_QUANTIZER_KIND, QuantizerConfig, VQConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    """Encoder / decoder widths, latent grid and codebook (van den Oord et al. 2017)."""

    hidden: int = Field(128, ge=4, le=MAX_CHANNELS,
                        description=f"Channels of the convolutional trunk (4 to {MAX_CHANNELS}).")
    residual_hidden: int = Field(32, ge=1, le=MAX_CHANNELS,
                                 description=f"Channels inside each residual block (1 to {MAX_CHANNELS}).")
    residual_blocks: int = Field(2, ge=0, le=16, description="Residual blocks in encoder and decoder.")
    downsample: int = Field(2, ge=1, le=4, description="Strided halvings: the latent grid is H/2^d x W/2^d.")
    embedding_dim: int = Field(64, ge=1, le=MAX_CHANNELS,
                               description=f"D: size of each code vector. 1 to {MAX_CHANNELS}.")
    codebook_size: int = Field(512, ge=2, le=MAX_CODEBOOK, description="K: number of code vectors, 2 to 2^20 "
                               "(quantizer.kind vq; fsq has the product of quantizer.levels).")
    levels: int = Field(
        1, ge=1, le=2, description="1: one code grid; 2: VQ-VAE-2, a top grid top_downsample halvings coarser than "
        "the bottom one, whose codes condition the bottom quantizer and the decoder (each level has its own "
        "quantizer of K codes)."
    )
    top_downsample: int = Field(1, ge=1, le=3, description="levels 2: halvings from the bottom grid to the top grid.")


class OptimConfig(_Section):
    """Adam on the reconstruction + quantizer loss."""

    lr: float = Field(3e-4, gt=0.0, le=1.0, description="Adam learning rate.")
    batch_size: int = Field(64, ge=1, le=MAX_BATCH, description="Images per training step (at most 2^16).")
    epochs: int = Field(10, ge=1, le=MAX_EPOCHS, description="Passes over the training split (at most 10^6).")
    weight_decay: float = Field(0.0, ge=0.0, description="Adam weight decay.")
    grad_clip: Optional[float] = Field(None, gt=0.0, description="Clip the gradient norm to this value.")


class TrainConfig(_Section):
    """One VQ-VAE training run: ``vqtune train CONFIG.yaml`` and every search trial."""

    data: DataSection = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    quantizer: QuantizerConfig = Field(default_factory=VQConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    prior: Optional[PriorSection] = Field(
        None, description="Stage 2 (a prior over the codes, of prior.kind: pixelcnn); null: stage 1 only."
    )
    seed: int = Field(0, ge=-MAX_SEED, le=MAX_SEED,
                      description="Seed of weights, batch order and codebook restarts (at most 2^40 in magnitude).")
    device: str = Field("auto", description="auto (CUDA when visible), cpu, cuda or cuda:N.")
    run_dir: Path = Field(
        Path("runs/vqvae"),
        description="Where the run is written; an existing non-empty directory gets a numbered sibling.",
    )

    @property
    def stages(self) -> Tuple[str, ...]:
        """What a run of this config trains: ``vqvae`` (stage 1), ``prior`` (stage 2 on
        ``prior.vqvae_checkpoint``), or both, stage 1 first, when the prior has no checkpoint to start from."""
        if self.prior is None:
            return ("vqvae",)
        if self.prior.vqvae_checkpoint is not None:
            return ("prior",)
        return ("vqvae", "prior")

    @property
    def codebook_size(self) -> int:
        """K, the number of codes: model.codebook_size, or the quantizer's own (the product of the levels of an fsq
        quantizer)."""
        own = self.quantizer.own_codebook_size()
        return self.model.codebook_size if own is None else own

    @property
    def total_epochs(self) -> int:
        """The epochs of every stage this config trains: the last epoch's number (the stages count on as
        one sequence), the pruner's resource and the live view's denominator."""
        return sum(self.optim.epochs if stage == "vqvae" else self.prior.epochs for stage in self.stages)

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        head, _, index = value.partition(":")
        if head not in ("auto", "cpu", "cuda") or (index and (head != "cuda" or not index.isdigit())):
            raise ValueError("expected auto, cpu, cuda or cuda:N")
        return value

    @model_validator(mode="after")
    def _codebook_size_of_the_quantizer_kind(self) -> "TrainConfig":
        # the keys of another kind are the quantizer section's to refuse; K is set in one place or the other
        q, given = self.quantizer, self.model.codebook_size
        if q.own_codebook_size() is not None and given != ModelConfig.model_fields["codebook_size"].default \
                and given != self.codebook_size:
            raise ValueError(
                f"model.codebook_size ({given}) does not apply to quantizer.kind {q.kind}, whose K is "
                f"{q.codebook_size_from} ({self.codebook_size}); remove it or set "
                f"quantizer.kind: {DEFAULT_QUANTIZER_KIND}"
            )
        return self

    @model_validator(mode="after")
    def _grid_fits_resolution(self) -> "TrainConfig":
        m = self.model
        if m.levels == 1 and m.top_downsample != ModelConfig.model_fields["top_downsample"].default:
            raise ValueError("model.top_downsample applies to model.levels 2 only; remove it or set model.levels: 2")
        height, width = self.data.size
        if m.levels == 2:
            factor = 2 ** (m.downsample + m.top_downsample)
            if height % factor or width % factor:
                raise ValueError(
                    f"data.resolution {height}x{width} is not divisible by 2^(model.downsample + "
                    f"model.top_downsample) = {factor} (two levels); use a multiple of {factor} or fewer halvings"
                )
            return self
        factor = 2**m.downsample
        if height % factor or width % factor:
            raise ValueError(
                f"data.resolution {height}x{width} is not divisible by 2^model.downsample = {factor}; "
                f"use a multiple of {factor} or a smaller model.downsample"
            )
        return self

    @property
    def grids(self) -> Tuple[Tuple[int, int], ...]:
        """(height, width) of each level's code grid: the bottom one, or the top one then the bottom one."""
        height, width = self.data.size
        bottom = (height >> self.model.downsample, width >> self.model.downsample)
        if self.model.levels == 1:
            return (bottom,)
        top = (bottom[0] >> self.model.top_downsample, bottom[1] >> self.model.top_downsample)
        return (top, bottom)
