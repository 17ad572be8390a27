"""The ``skimage-photos`` source: crops of the photographs bundled with scikit-image, a real, offline,
CC0 / public-domain source."""

from __future__ import annotations

import skimage.data
from PIL import Image

from vqtune.config import SkimagePhotosConfig
from vqtune.data._decode import crop_image, to_channels
from vqtune.data._memory import check_fits
from vqtune.data._protocol import Images, SplitSizes
from vqtune.data._split import crop_rng, crop_sizes, split_images

# `text` and `page` are documents, not photographs; the rest of the bundled images are.
PHOTOS = (
    "astronaut", "camera", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "moon", "coins",
    "hubble_deep_field", "immunohistochemistry", "retina", "stereo_motorcycle", "cell", "clock",
)  # fmt: skip


def sizes(cfg: SkimagePhotosConfig) -> SplitSizes:
    """The sizes :func:`open` gives for ``cfg`` (exact: the photos are always there)."""
    return crop_sizes(cfg, len(PHOTOS), exact=True, unit="photo")


def open(cfg: SkimagePhotosConfig) -> Images:
    """Crops of the 16 photos: ``train (N, C, H, W)``, ``val (M, C, H, W)`` uint8, and a description.

    Photos, not crops, are split between train and val; with the defaults (32x32 random crops, 128 per photo,
    val_fraction 0.15) that is 14 photos -> 1792 train crops and 2 photos -> 256 val crops.
    """
    channels = cfg.image_channels
    check_fits(cfg, len(PHOTOS), channels)
    groups = []
    for name in PHOTOS:
        pixels = getattr(skimage.data, name)()
        if name == "stereo_motorcycle":  # (left, right, disparity): keep the left view
            pixels = pixels[0]
        img = to_channels(Image.fromarray(pixels), channels)
        rng = crop_rng(cfg.split_seed, name)
        groups.append((name, crop_image(img, cfg.size, cfg.crop, cfg.crops_per_image, cfg.resize, rng)))
    train, val = split_images(groups, cfg.val_fraction, cfg.split_seed, cfg.max_images, "skimage-photos")
    height, width = cfg.size
    description = (
        f"skimage-photos: {len(PHOTOS)} photos -> {len(train)} train / {len(val)} val "
        f"{cfg.crop} crops of {height}x{width}x{channels}"
    )
    return Images(train, val, description)
