from __future__ import annotations

import torch

from vqtune.config import DataConfig
from vqtune.data import load_images


def test_defaults_give_photo_level_split_of_random_crops():
    data = load_images(DataConfig())
    # 16 photos, round(16 * 0.15) = 2 held out, 128 crops each.
    assert data.train.shape == (14 * 128, 3, 32, 32) and data.val.shape == (2 * 128, 3, 32, 32)
    assert data.train.dtype == torch.uint8 and data.train.is_contiguous() and data.val.is_contiguous()
    assert data.description == "skimage-photos: 16 photos -> 1792 train / 256 val random crops of 32x32x3 (6.0 MiB of uint8 images)"
    assert data.train.float().std() > 30  # real photo content, not padding
    again = load_images(DataConfig())
    assert torch.equal(data.train, again.train) and torch.equal(data.val, again.val)


def test_grey_center_crops_and_seed():
    data = load_images(DataConfig(channels=1, crop="center", resolution=(24, 40), resize=48))
    assert data.train.shape == (14, 1, 24, 40) and data.val.shape == (2, 1, 24, 40)
    other = load_images(DataConfig(channels=1, crop="center", resolution=(24, 40), resize=48, split_seed=1))
    assert not torch.equal(data.val, other.val)


def test_max_images():
    data = load_images(DataConfig(crops_per_image=16, max_images=100))
    assert (len(data.train), len(data.val)) == (88, 12)
