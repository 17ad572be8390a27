"""The schema of one training run: the single source of every default and allowed range."""

from __future__ import annotations

from pathlib import Path
import math
from typing import List, Literal, Optional, Tuple, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Upper bounds of sizes, generous for a large GPU and far below what makes an allocation or an integer overflow:
# a value past one is refused by name before anything is built, not by the allocator mid-run.
MAX_SIDE = 16384  # pixels per image side (a 16384 x 16384 RGB image is 768 MiB as uint8)
MAX_CHANNELS = 4096  # convolution channels and code dimensions (a 4096 -> 4096 4x4 conv is 1 GiB of fp32 weights)
MAX_CODEBOOK = 2**20  # codes K (VQ-VAE papers use 512 to 2^18; the prior's logits are K per latent)
MAX_CROPS = 100_000  # random crops per image (every crop of every image is held in memory as uint8)
MAX_BATCH = 2**16  # images or code grids per step
MAX_EPOCHS = 10**6  # passes over the training split
MAX_STEPS = 10**9  # training steps a code may stay unused (a counter compared in int64)
MAX_SEED = 2**40  # the trainer seeds epoch e with seed x 1,000,003 + e, which must fit torch's 64-bit seed


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """Where images come from and how they become ``uint8 (N, C, H, W)`` tensors."""

    source: Literal["skimage-photos", "folder", "fashion-mnist"] = Field(
        "skimage-photos",
        description="skimage-photos: crops of the photographs bundled with scikit-image (works offline); "
        "folder: any directory tree of JPEG/PNG/WebP/BMP; fashion-mnist: the IDX files.",
    )
    path: Optional[Path] = Field(
        None,
        description="folder: the image directory (required). fashion-mnist: the IDX directory "
        "(default: $VQTUNE_FASHION_MNIST_DIR, then /usr/share/datasets/fashion-mnist).",
    )
    resolution: Union[int, Tuple[int, int]] = Field(
        32, description=f"Side of the square training images, or [height, width]: 4 to {MAX_SIDE} pixels each."
    )
    crop: Literal["center", "random"] = Field(
        "random", description="center: one crop per image; random: crops_per_image random crops per image."
    )
    crops_per_image: int = Field(128, ge=1, le=MAX_CROPS,
                                 description=f"Random crops taken from each image (at most {MAX_CROPS:,}).")
    resize: Optional[int] = Field(
        None,
        ge=8,
        le=2 * MAX_SIDE,
        description="Resize each image so its short side has this many pixels before cropping "
        f"(8 to {2 * MAX_SIDE}; default: none for random crops; for center crops, just enough to cover the crop).",
    )
    channels: Optional[Literal[1, 3]] = Field(
        None, description="1 (grey) or 3 (RGB); default: 1 for fashion-mnist, 3 otherwise."
    )
    val_fraction: float = Field(
        0.15, gt=0.0, lt=1.0,
        description="Share of source images (photos or files) held out for validation; "
        "fashion-mnist uses its official test split instead.",
    )
    split_seed: int = Field(0, ge=-MAX_SEED, le=MAX_SEED,
                            description="Seed of the deterministic train/val split and of the crops (at most 2^40 "
                            "in magnitude).")
    max_images: Optional[int] = Field(
        None, ge=2, description="Keep at most this many training images (crops), train and val together."
    )
    cache_dir: Optional[Path] = Field(
        None, description="Decoded-data cache of the folder source (default: $VQTUNE_CACHE_DIR or ~/.cache/vqtune)."
    )

    @field_validator("resolution")
    @classmethod
    def _positive_resolution(cls, value):
        sides = (value, value) if isinstance(value, int) else value
        if min(sides) < 4:
            raise ValueError("each side must be at least 4 pixels")
        if max(sides) > MAX_SIDE:
            raise ValueError(f"each side must be at most {MAX_SIDE} pixels")
        return value

    @model_validator(mode="after")
    def _folder_needs_path(self) -> "DataConfig":
        if self.source == "folder" and self.path is None:
            raise ValueError("data.path is required when data.source is folder; set it to a directory of images")
        return self

    @property
    def size(self) -> Tuple[int, int]:
        """``(height, width)`` of the training images."""
        r = self.resolution
        return (r, r) if isinstance(r, int) else (int(r[0]), int(r[1]))


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


DEFAULT_FSQ_LEVELS = [8, 5, 5, 5]  # K = 1000 (the FSQ paper's recommended levels for about 2^10 codes)
# Keys of the quantizer section that only the codebook quantizer has.
VQ_ONLY = ("beta", "ema", "decay", "eps", "dead_code_steps", "kmeans_init", "codebook_dim", "normalize", "estimator")


class QuantizerConfig(_Section):
    """How the encoder outputs become codes: a learned codebook (``vq``) or finite scalar quantization (``fsq``)."""

    kind: Literal["vq", "fsq"] = Field(
        "vq", description="vq: nearest code of a learned codebook of model.codebook_size codes; fsq: finite scalar "
        "quantization, K = the product of levels, no codebook (nothing to collapse)."
    )
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
        """The levels of an fsq quantizer (the default when unset)."""
        return list(self.levels) if self.levels is not None else list(DEFAULT_FSQ_LEVELS)


class OptimConfig(_Section):
    """Adam on the reconstruction + quantizer loss."""

    lr: float = Field(3e-4, gt=0.0, le=1.0, description="Adam learning rate.")
    batch_size: int = Field(64, ge=1, le=MAX_BATCH, description="Images per training step (at most 2^16).")
    epochs: int = Field(10, ge=1, le=MAX_EPOCHS, description="Passes over the training split (at most 10^6).")
    weight_decay: float = Field(0.0, ge=0.0, description="Adam weight decay.")
    grad_clip: Optional[float] = Field(None, gt=0.0, description="Clip the gradient norm to this value.")


class PriorConfig(_Section):
    """Stage 2: a Gated PixelCNN prior over the code grids of a trained VQ-VAE."""

    vqvae_checkpoint: Optional[Path] = Field(
        None,
        description="Stage-1 checkpoint to encode the data with (default: train stage 1 first and use its best.pt). "
        "Its own data settings are used, so the codes match what it was trained on.",
    )
    channels: int = Field(64, ge=4, le=MAX_CHANNELS,
                          description=f"Width of the vertical and horizontal stacks (4 to {MAX_CHANNELS}).")
    layers: int = Field(8, ge=1, le=64, description="Gated layers (the first masked A, the rest B).")
    kernel: int = Field(3, ge=3, le=9, description="Odd kernel size of the stacks.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the horizontal stack.")
    lr: float = Field(3e-4, gt=0.0, le=1.0, description="Adam learning rate.")
    batch_size: int = Field(64, ge=1, le=MAX_BATCH, description="Code grids per training step (at most 2^16).")
    epochs: int = Field(10, ge=1, le=MAX_EPOCHS, description="Passes over the training codes (at most 10^6).")
    weight_decay: float = Field(0.0, ge=0.0, description="Adam weight decay.")
    grad_clip: Optional[float] = Field(None, gt=0.0, description="Clip the gradient norm to this value.")

    @field_validator("kernel")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError("must be odd (3, 5, 7 or 9)")
        return value


class TrainConfig(_Section):
    """One VQ-VAE training run: ``vqtune train CONFIG.yaml`` and every search trial."""

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    quantizer: QuantizerConfig = Field(default_factory=QuantizerConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    prior: Optional[PriorConfig] = Field(
        None, description="Stage 2 (a PixelCNN prior over the codes); null: stage 1 only."
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
        """K, the number of codes: model.codebook_size, or the product of the levels of an fsq quantizer."""
        if self.quantizer.kind == "fsq":
            return math.prod(self.quantizer.fsq_levels)
        return self.model.codebook_size

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
    def _keys_of_the_quantizer_kind(self) -> "TrainConfig":
        q = self.quantizer
        if q.kind == "vq" and q.levels is not None:
            raise ValueError("quantizer.levels applies to quantizer.kind fsq only; remove it or set quantizer.kind: fsq")
        if q.kind == "fsq":
            default = QuantizerConfig.model_fields
            for key in VQ_ONLY:
                if getattr(q, key) != default[key].default:
                    raise ValueError(f"quantizer.{key} applies to quantizer.kind vq only (fsq has no codebook to "
                                     "learn); remove it or set quantizer.kind: vq")
            given = self.model.codebook_size
            if given != ModelConfig.model_fields["codebook_size"].default and given != self.codebook_size:
                raise ValueError(
                    f"model.codebook_size ({given}) does not apply to quantizer.kind fsq, whose K is the product of "
                    f"quantizer.levels ({self.codebook_size}); remove it or set quantizer.kind: vq"
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
