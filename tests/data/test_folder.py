from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.data.conftest import photo
from vqtune.config import FolderConfig, validate
from vqtune.data import load_images
from vqtune.errors import ConfigError, DataError


def folder(root: Path, tmp_path: Path, **settings) -> FolderConfig:
    return FolderConfig(path=root, cache_dir=tmp_path / "cache", **settings)


def test_mixed_tree_random_crops(mixed_tree, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="vqtune.data"):
        data = load_images(folder(mixed_tree, tmp_path, resolution=16, crops_per_image=4))
    # 7 readable images: round(7 * 0.15) = 1 held out, 4 crops each.
    assert data.train.shape == (24, 3, 16, 16) and data.val.shape == (4, 3, 16, 16)
    assert data.train.dtype == torch.uint8 and data.train.is_contiguous()
    assert "7 images -> 24 train / 4 val random crops of 16x16x3" in data.description
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(f"skipped 2 unreadable files under {mixed_tree} (first: {mixed_tree / 'corrupt.jpg'}")


def test_mixed_tree_center_crops_non_square_grey(mixed_tree, tmp_path):
    data = load_images(folder(mixed_tree, tmp_path, resolution=(16, 32), crop="center", channels=1))
    assert data.train.shape == (6, 1, 16, 32) and data.val.shape == (1, 1, 16, 32)


def test_loads_are_deterministic(mixed_tree, tmp_path):
    first = load_images(folder(mixed_tree, tmp_path / "a", resolution=8, crops_per_image=3, split_seed=5))
    again = load_images(folder(mixed_tree, tmp_path / "b", resolution=8, crops_per_image=3, split_seed=5))
    other = load_images(folder(mixed_tree, tmp_path / "c", resolution=8, crops_per_image=3, split_seed=6))
    assert torch.equal(first.train, again.train) and torch.equal(first.val, again.val)
    assert not torch.equal(first.train, other.train)


def test_crops_of_one_file_stay_in_one_split(tmp_path):
    root = tmp_path / "flat"
    for i in range(20):  # each file one flat grey level, so a crop tells which file it came from
        (root / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        Image.new("L", (40, 30), 10 * i).save(root / f"d{i % 3}" / f"{i}.png")
    data = load_images(folder(root, tmp_path, resolution=8, crops_per_image=5, val_fraction=0.2))
    train, val = set(data.train.unique().tolist()), set(data.val.unique().tolist())
    assert len(train) == 16 and len(val) == 4 and not train & val
    assert len(data.train) == 16 * 5


def test_max_images_caps_both_splits_in_proportion(photo_dir, tmp_path):
    cfg = folder(photo_dir, tmp_path, resolution=16, crops_per_image=10, val_fraction=0.25, max_images=20)
    data = load_images(cfg)
    assert (len(data.train), len(data.val)) == (15, 5)


def test_sixteen_bit_grey_is_rescaled_not_clipped(tmp_path):
    root = tmp_path / "wide"
    root.mkdir()
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(root / "ramp.png")
    Image.fromarray(ramp.T.copy()).save(root / "ramp_t.png")
    data = load_images(folder(root, tmp_path, resolution=64, crop="center", channels=1))
    for split in (data.train, data.val):
        assert split.min() == 0 and split.max() == 255
        assert 120 < split.float().mean() < 135


def test_transparent_pixels_become_white(tmp_path):
    root = tmp_path / "clear"
    root.mkdir()
    Image.new("RGBA", (16, 16), (200, 0, 0, 0)).save(root / "rgba.png")
    palette = Image.new("P", (16, 16), 3)
    palette.putpalette(range(48))
    palette.save(root / "palette.png", transparency=3)
    data = load_images(folder(root, tmp_path, resolution=16, crop="center"))
    assert torch.all(torch.cat([data.train, data.val]) == 255)


def test_exif_orientation_is_applied(tmp_path):
    root = tmp_path / "turned"
    root.mkdir()
    sideways = Image.new("L", (64, 32), 0)
    sideways.paste(255, (0, 0, 32, 32))  # white left half; EXIF 6 turns it to the top half
    exif = Image.Exif()
    exif[0x0112] = 6
    for name in ("a.jpg", "b.jpg"):
        sideways.save(root / name, exif=exif, quality=95)
    data = load_images(folder(root, tmp_path, resolution=(64, 32), crop="center", channels=1))
    image = data.train[0, 0].float()
    assert image[:28].mean() > 240 and image[36:].mean() < 15


def test_large_jpeg_is_drafted_to_a_small_center_crop(tmp_path):
    root = tmp_path / "large"
    root.mkdir()
    photo("astronaut", 2000, 1500).save(root / "astronaut.jpg")
    photo("coffee", 2000, 1500).save(root / "coffee.jpg")
    data = load_images(folder(root, tmp_path, resolution=32, crop="center", resize=48))
    assert data.train.shape == (1, 3, 32, 32) and data.val.shape == (1, 3, 32, 32)
    # The drafted decode must look like a direct downscale of the original.
    crops = torch.cat([data.train, data.val]).numpy().astype(int)
    for name in ("astronaut", "coffee"):
        expected = np.asarray(photo(name, 64, 48))[8:40, 16:48].transpose(2, 0, 1)
        assert min(np.abs(crop - expected).mean() for crop in crops) < 8, name


def test_single_image_splits_its_crops(tmp_path, caplog):
    root = tmp_path / "one"
    root.mkdir()
    photo("chelsea", 90, 60).save(root / "chelsea.png")
    with caplog.at_level(logging.WARNING, logger="vqtune.data"):
        data = load_images(folder(root, tmp_path, resolution=16, crops_per_image=20))
    assert (len(data.train), len(data.val)) == (17, 3)
    assert "only one image" in caplog.text


@pytest.mark.parametrize("limit", [1000, 3000])  # 64x64 = 4096 pixels: over 2x the limit errors, over 1x warns
def test_decompression_bomb_is_an_error_naming_the_file(tmp_path, monkeypatch, limit):
    root = tmp_path / "bomb"
    root.mkdir()
    photo("moon", 16, 16).save(root / "fine.png")
    photo("moon", 64, 64).save(root / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(DataError, match="MAX_IMAGE_PIXELS") as error:
        load_images(folder(root, tmp_path, resolution=8))
    assert str(root / "bomb.png") in str(error.value) and "\n" not in str(error.value)


def test_missing_path_is_named(tmp_path):
    with pytest.raises(ConfigError, match="data.path is required when data.source is folder"):
        validate(FolderConfig, {"source": "folder"}, "run.yaml")
    with pytest.raises(DataError, match=str(tmp_path / "nowhere")):
        load_images(folder(tmp_path / "nowhere", tmp_path))


def test_folder_without_readable_images_is_named(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images")
    with pytest.raises(DataError, match=f"no readable image under {empty} .*accepted extensions: .bmp .jpeg"):
        load_images(folder(empty, tmp_path))
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("a.jpg", "b.png"):
        (broken / name).write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match=f"no readable image under {broken} .skipped 2 unreadable"):
        load_images(folder(broken, tmp_path))


def test_the_warning_about_skipped_files_goes_to_stderr(photo_dir, tmp_path):
    import subprocess
    import sys

    (photo_dir / "noise.jpg").write_bytes(bytes(range(256)) * 12)
    settings = ["data.source=folder", f"data.path={photo_dir}", f"data.cache_dir={tmp_path / 'cache'}",
                "data.resolution=16", "data.crops_per_image=8", "model.hidden=8", "model.residual_hidden=4",
                "model.embedding_dim=4", "model.codebook_size=16", "optim.epochs=1", "device=cpu",
                f"run_dir={tmp_path / 'run'}"]
    done = subprocess.run([sys.executable, "-m", "vqtune.cli", "train", *(a for s in settings for a in ("--set", s))],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if "unreadable" in line]  # one line
    assert line.startswith("vqtune: WARNING: skipped 1 unreadable files under") and "noise.jpg" in line
    assert "unreadable" not in done.stdout
