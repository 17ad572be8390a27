from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from vqtune.config import FashionMnistConfig
from vqtune.data import load_images
from vqtune.errors import DataError


def write_idx(path, images: np.ndarray, magic: int = 0x00000803) -> None:
    raw = struct.pack(">IIII", magic, *images.shape) + images.tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


@pytest.fixture
def idx_dir(tmp_path):
    """Six train and three t10k images of 28x28; image i is filled with i + 1 (t10k: 101 + i)."""
    root = tmp_path / "fmnist"
    root.mkdir()
    flat = np.ones((1, 28, 28), np.uint8)
    write_idx(root / "train-images-idx3-ubyte.gz", np.arange(1, 7, dtype=np.uint8)[:, None, None] * flat)
    write_idx(root / "t10k-images-idx3-ubyte", np.arange(101, 104, dtype=np.uint8)[:, None, None] * flat)
    return root


def test_official_split_padded_to_32(idx_dir):
    data = load_images(FashionMnistConfig(path=idx_dir))
    assert data.train.shape == (6, 1, 32, 32) and data.val.shape == (3, 1, 32, 32)
    assert data.train.dtype == torch.uint8
    assert torch.all(data.train[:, :, 2:30, 2:30] == torch.arange(1, 7, dtype=torch.uint8)[:, None, None, None])
    assert data.train.sum() == 28 * 28 * 21  # the border is zero
    assert "6 train / 3 val" in data.description


def test_environment_variable_rgb_and_cap(idx_dir, monkeypatch):
    monkeypatch.setenv("VQTUNE_FASHION_MNIST_DIR", str(idx_dir))
    data = load_images(FashionMnistConfig(channels=3, resolution=(28, 36), max_images=6))
    assert data.train.shape == (4, 3, 28, 36) and data.val.shape == (2, 3, 28, 36)
    assert torch.equal(data.train[:, 0], data.train[:, 2])


def test_resolution_below_28_is_an_error(idx_dir):
    with pytest.raises(DataError, match="data.resolution 16x16"):
        load_images(FashionMnistConfig(path=idx_dir, resolution=16))


def test_missing_files_name_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("VQTUNE_FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(DataError, match=f"no IDX files in {tmp_path} .*apt-get install dataset-fashion-mnist"):
        load_images(FashionMnistConfig())


def test_wrong_magic_names_the_file(idx_dir):
    bad = idx_dir / "t10k-images-idx3-ubyte"
    write_idx(bad, np.zeros((3, 28, 28), np.uint8), magic=0x00000801)
    with pytest.raises(DataError, match=f"{bad}: not an IDX image file .magic 0x00000801"):
        load_images(FashionMnistConfig(path=idx_dir))
    write_idx(bad, np.zeros((3, 28, 28), np.uint8))
    bad.write_bytes(bad.read_bytes()[:-10])
    with pytest.raises(DataError, match=f"{bad}: the header announces 3 images"):
        load_images(FashionMnistConfig(path=idx_dir))


REAL = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (REAL / "train-images-idx3-ubyte.gz").exists(),
                    reason="Debian package dataset-fashion-mnist not installed (make fashion-mnist)")
def test_the_real_files_from_the_debian_package():
    data = load_images(FashionMnistConfig(resolution=32, max_images=7000))
    assert data.train.shape == (6000, 1, 32, 32) and data.val.shape == (1000, 1, 32, 32)
    assert data.train[:, :, :2].max() == 0 and data.train[:, :, 2:30, 2:30].float().mean() > 50  # 2 px padding
