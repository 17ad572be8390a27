"""A dataset that cannot fit in memory is refused in one line before it is built, naming what to lower."""

import pytest

from vqtune.cli import main
from vqtune.config import DataConfig, FolderConfig
from vqtune.data import load_images
from vqtune.data._memory import check_fits, dataset_bytes
from vqtune.errors import DataError


def test_the_size_is_counted_from_the_settings():
    cfg = DataConfig(resolution=[128, 64], crops_per_image=10, max_images=None)
    assert dataset_bytes(cfg, sources=23, channels=3) == 23 * 10 * 3 * 128 * 64
    assert dataset_bytes(cfg.model_copy(update={"max_images": 100}), 23, 3) == 100 * 3 * 128 * 64
    assert dataset_bytes(cfg.model_copy(update={"crop": "center"}), 23, 3) == 23 * 3 * 128 * 64


def test_a_dataset_larger_than_memory_is_refused_naming_the_keys():
    cfg = DataConfig(resolution=256, crops_per_image=512)
    with pytest.raises(DataError) as caught:
        check_fits(cfg, sources=1000, channels=3, available=8 * 2**30)
    message = str(caught.value)
    assert "\n" not in message and "93.8 GiB" in message and "8.0 GiB" in message
    assert all(key in message for key in ("data.resolution", "data.crops_per_image", "data.max_images"))
    assert check_fits(cfg, sources=10, channels=3, available=8 * 2**30) == 10 * 512 * 3 * 256 * 256


def test_the_run_states_the_size_and_refuses_what_this_machine_cannot_hold(photo_dir, tmp_path, capsys):
    data = load_images(FolderConfig(path=photo_dir, resolution=16, crops_per_image=4,
                                  cache_dir=tmp_path / "cache"))
    size = data.train.numel() + data.val.numel()
    assert f"({size / 1024:.1f} KiB of uint8 images)" in data.description
    # far more crops than any machine holds: refused before a single image is decoded, nothing written
    code = main(["train", "--set", "data.source=folder", "--set", f"data.path={photo_dir}",
                 "--set", "data.resolution=512", "--set", "data.crops_per_image=10000000",
                 "--set", f"data.cache_dir={tmp_path / 'cache2'}", "--set", f"run_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "data.crops_per_image" in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache2").exists()
