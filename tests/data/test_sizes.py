"""The split sizes a dry run counts, without decoding, are the ones loading gives."""

import pytest

from vqtune.config import FolderConfig, load_train_config
from vqtune.data import load_images, split_sizes


@pytest.mark.parametrize("settings", [{"crop": "random", "crops_per_image": 5}, {"crop": "center"},
                                      {"crop": "random", "crops_per_image": 5, "max_images": 9}])
def test_split_sizes_match_the_loaded_folder(photo_dir, tmp_path, settings):
    cfg = FolderConfig(path=photo_dir, resolution=16, cache_dir=tmp_path / "cache", **settings)
    counted = split_sizes(cfg)
    assert not counted.exact and not (tmp_path / "cache").exists()
    data = load_images(cfg)  # decodes and caches
    assert (counted.train_images, counted.val_images) == (len(data.train), len(data.val))
    cached = split_sizes(cfg)
    assert cached.exact and (cached.train_images, cached.val_images) == (len(data.train), len(data.val))
    assert (cached.sources, cached.val_sources) == (4, 1)


def test_split_sizes_match_the_bundled_photos():
    cfg = load_train_config(None, ["data.resolution=16", "data.crops_per_image=6", "data.max_images=50"]).data
    sizes, data = split_sizes(cfg), load_images(cfg)
    assert (sizes.train_images, sizes.val_images, sizes.sources, sizes.val_sources) == (
        len(data.train), len(data.val), 16, 2)
