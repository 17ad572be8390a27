"""One image → ``uint8 (K, C, H, W)`` crops: decode upright, convert to L or RGB, resize, crop."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal, Optional, Tuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, ImageOps

# Pillow's own conversion of these modes to L clips at 255 instead of rescaling the 16-bit range.
_WIDE_GREY = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_ALPHA = {"RGBA", "RGBa", "LA", "La", "PA"}


def _scale(height: int, width: int, size: Tuple[int, int], crop: str, resize: Optional[int]) -> float:
    """Resize factor of a ``height x width`` image: short side to ``resize`` if given (random crops: none,
    center crops: just cover), never below covering ``size``."""
    base = resize / min(height, width) if resize else (1.0 if crop == "random" else 0.0)
    return max(base, size[0] / height, size[1] / width)


def to_channels(img: Image.Image, channels: Literal[1, 3]) -> Image.Image:
    """Any Pillow mode → ``L`` (channels 1) or ``RGB`` (3); transparency is composited on white."""
    if img.mode in _WIDE_GREY:
        wide = np.clip(np.asarray(img, dtype=np.float32), 0, 65535)
        img = Image.fromarray(np.rint(wide / 257).astype(np.uint8))
    elif img.mode in _ALPHA or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    mode = "L" if channels == 1 else "RGB"
    return img if img.mode == mode else img.convert(mode)


def open_image(
    path: Path,
    size: Tuple[int, int],
    crop: Literal["center", "random"],
    resize: Optional[int],
    channels: Literal[1, 3],
) -> Image.Image:
    """Decode one file upright (EXIF orientation) as ``L`` or ``RGB``.

    A JPEG is shrunk by up to 8x while decoding when the crop needs far fewer pixels: decoding a 5312x2988
    photo in full takes ~15x longer than its 1/8 draft.
    """
    with Image.open(path) as img:
        width, height = img.size
        # EXIF orientation may still turn the image by 90 degrees: ask for a draft that covers the target both ways.
        scale = max(_scale(height, width, size, crop, resize), _scale(width, height, size, crop, resize))
        img.draft("L" if channels == 1 else "RGB", (math.ceil(width * scale), math.ceil(height * scale)))
        upright = ImageOps.exif_transpose(img)
    return to_channels(upright, channels)


def crop_image(
    img: Image.Image,
    size: Tuple[int, int],
    crop: Literal["center", "random"],
    crops_per_image: int,
    resize: Optional[int],
    rng: np.random.Generator,
) -> np.ndarray:
    """Crops ``uint8 (K, C, H, W)`` of an ``L`` or ``RGB`` image; ``K`` is 1 for center crops.

    The image is first resized (Lanczos, with box reduction for large factors) so that its short side is
    ``resize`` when given, and so that it covers ``size = (H, W)``.
    """
    height, width = size
    scale = _scale(img.height, img.width, size, crop, resize)
    if scale != 1.0:
        new_size = (max(width, round(img.width * scale)), max(height, round(img.height * scale)))
        img = img.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    pixels = np.asarray(img).reshape(img.height, img.width, -1)
    if crop == "center":
        top, left = (img.height - height) // 2, (img.width - width) // 2
        return pixels[None, top : top + height, left : left + width].transpose(0, 3, 1, 2)
    windows = sliding_window_view(pixels, size, axis=(0, 1))  # (rows, cols, C, H, W), a view
    rows = rng.integers(0, img.height - height + 1, crops_per_image)
    cols = rng.integers(0, img.width - width + 1, crops_per_image)
    return windows[rows, cols]
