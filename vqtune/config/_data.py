"""The schema of the data section: one model per source, chosen by ``data.source`` (skimage-photos when missing).

A new source is a new class here, with the options only it has, in ``DATA_SOURCES`` (the union of the ``data``
section follows), and a module of the same name in ``vqtune.data.SOURCES``. Options of another source are refused
by the schema itself: ``cache_dir`` under ``source: skimage-photos`` is an unknown key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Optional, Tuple, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, field_validator, model_validator

from vqtune.config._bounds import MAX_CROPS, MAX_SEED, MAX_SIDE

DEFAULT_SOURCE = "skimage-photos"


class SourceConfig(BaseModel):
    """What every data source shares: the size of its images and how they are cropped and split."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # Each source narrows it to its own name.
    source: str = Field(DEFAULT_SOURCE, description="Where the images come from.")
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

    # The channels of a source's images when ``channels`` is unset.
    default_channels: ClassVar[int] = 3

    @field_validator("resolution")
    @classmethod
    def _positive_resolution(cls, value):
        sides = (value, value) if isinstance(value, int) else value
        if min(sides) < 4:
            raise ValueError("each side must be at least 4 pixels")
        if max(sides) > MAX_SIDE:
            raise ValueError(f"each side must be at most {MAX_SIDE} pixels")
        return value

    @property
    def size(self) -> Tuple[int, int]:
        """``(height, width)`` of the training images."""
        r = self.resolution
        return (r, r) if isinstance(r, int) else (int(r[0]), int(r[1]))

    @property
    def image_channels(self) -> int:
        """The channels of the images: ``channels``, or the source's own when unset."""
        return self.channels or self.default_channels

    def with_absolute_paths(self) -> "SourceConfig":
        """A copy whose paths (``path``, ``cache_dir``: whichever the source has and are set) are absolute."""
        return self.model_copy(update={name: value.resolve() for name, value in self if isinstance(value, Path)})


class SkimagePhotosConfig(SourceConfig):
    """Crops of the photographs bundled with scikit-image, as ``uint8 (N, C, H, W)`` tensors."""

    source: Literal["skimage-photos"] = Field(
        "skimage-photos",
        description="skimage-photos: crops of the photographs bundled with scikit-image (works offline); "
        "folder: any directory tree of JPEG/PNG/WebP/BMP; fashion-mnist: the IDX files.",
    )


class FolderConfig(SourceConfig):
    """A directory tree of images, decoded once into ``uint8 (N, C, H, W)`` tensors and cached."""

    source: Literal["folder"] = Field("folder", description="folder: any directory tree of JPEG/PNG/WebP/BMP.")
    path: Optional[Path] = Field(None, description="The image directory (required).")
    cache_dir: Optional[Path] = Field(
        None, description="Decoded-data cache of the folder source (default: $VQTUNE_CACHE_DIR or ~/.cache/vqtune)."
    )

    @model_validator(mode="after")
    def _needs_path(self) -> "FolderConfig":
        if self.path is None:
            raise ValueError("data.path is required when data.source is folder; set it to a directory of images")
        return self


class FashionMnistConfig(SourceConfig):
    """The Fashion-MNIST IDX files as ``uint8 (N, C, H, W)`` tensors, in their official split."""

    source: Literal["fashion-mnist"] = Field(
        "fashion-mnist", description="fashion-mnist: the IDX files (official train and test splits)."
    )
    path: Optional[Path] = Field(
        None, description="The IDX directory (default: $VQTUNE_FASHION_MNIST_DIR, then "
        "/usr/share/datasets/fashion-mnist).",
    )

    default_channels: ClassVar[int] = 1


# source -> section. A new source: one line here.
DATA_SOURCES = {
    "skimage-photos": SkimagePhotosConfig,
    "folder": FolderConfig,
    "fashion-mnist": FashionMnistConfig,
}

# The default section, and the one ``vqtune.config.DataConfig`` names.
DataConfig = SkimagePhotosConfig

_UNKNOWN = "unknown source"


class _UnknownSource(BaseModel):
    """Stands for a ``data`` section whose source names none of ``DATA_SOURCES``: it refuses the name at
    ``data.source`` as a literal is refused, with the sources to choose from."""

    model_config = ConfigDict(extra="allow")

    source: Literal[tuple(DATA_SOURCES)]  # type: ignore[valid-type]


def _source_of(value: Any) -> str:
    """The tag of a ``data`` section: its ``source``, the default source when it names none."""
    source = value.get("source", DEFAULT_SOURCE) if isinstance(value, dict) else getattr(value, "source",
                                                                                          DEFAULT_SOURCE)
    return source if source in DATA_SOURCES else _UNKNOWN


# The ``data`` section: one of the sources, discriminated on ``source``.
DataSection = Annotated[
    Union[tuple(Annotated[section, Tag(source)] for source, section in
                [*DATA_SOURCES.items(), (_UNKNOWN, _UnknownSource)])],  # type: ignore[misc]
    Discriminator(_source_of),
]


def data_config(data: Any) -> SourceConfig:
    """The section of ``data``'s source (skimage-photos when it names none), validated as ``data:`` of a config is.

    >>> data_config({"source": "folder", "path": "photos"}).path
    PosixPath('photos')
    """
    return TypeAdapter(DataSection).validate_python(data)
