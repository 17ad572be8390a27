from __future__ import annotations

import os

import pytest
import torch

from vqtune.config import FolderConfig
from vqtune.data import _folder, load_images


def cached(root, tmp_path) -> FolderConfig:
    return FolderConfig(path=root, cache_dir=tmp_path / "cache", resolution=16, crops_per_image=3)


@pytest.fixture
def decodes(monkeypatch):
    """Counts the files the folder source decodes."""
    calls = []

    def counting(path, *args):
        calls.append(path)
        return open_image(path, *args)

    open_image = _folder.open_image
    monkeypatch.setattr(_folder, "open_image", counting)
    return calls


def test_second_load_reads_the_cache(photo_dir, tmp_path, monkeypatch, decodes):
    cfg = cached(photo_dir, tmp_path)
    first = load_images(cfg)
    assert len(decodes) == 4 and len(list((tmp_path / "cache").glob("*.npz"))) == 1

    def no_decoding(*args):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(_folder, "open_image", no_decoding)
    again = load_images(cfg)
    assert torch.equal(first.train, again.train) and torch.equal(first.val, again.val)
    assert again.description == first.description


def test_changes_miss_the_cache(photo_dir, tmp_path, decodes):
    cfg = cached(photo_dir, tmp_path)
    load_images(cfg)
    stat = (photo_dir / "camera.png").stat()
    os.utime(photo_dir / "camera.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    load_images(cfg)
    assert len(decodes) == 8
    (photo_dir / "copy.png").write_bytes((photo_dir / "camera.png").read_bytes())
    assert len(load_images(cfg).train) + len(load_images(cfg).val) == 15
    assert len(decodes) == 13
    cfg.crops_per_image = 2
    load_images(cfg)
    assert len(decodes) == 18


def test_environment_variable_sets_the_cache_dir(photo_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VQTUNE_CACHE_DIR", str(tmp_path / "env-cache"))
    load_images(FolderConfig(path=photo_dir, resolution=16, crops_per_image=2))
    assert len(list((tmp_path / "env-cache").glob("folder-*.npz"))) == 1


def test_damaged_cache_file_is_decoded_again(photo_dir, tmp_path, decodes):
    cfg = cached(photo_dir, tmp_path)
    first = load_images(cfg)
    [entry] = (tmp_path / "cache").glob("*.npz")
    entry.write_bytes(entry.read_bytes()[:500])
    again = load_images(cfg)
    assert torch.equal(first.train, again.train) and len(decodes) == 8
    assert load_images(cfg).description == first.description and len(decodes) == 8  # rewritten intact
    assert not list((tmp_path / "cache").glob("*.tmp"))
