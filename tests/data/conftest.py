"""Image folders built from the photographs bundled with scikit-image."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image


def photo(name: str, width: int, height: int) -> Image.Image:
    """A scikit-image photograph resized to ``width x height``."""
    return Image.fromarray(getattr(skimage.data, name)()).resize((width, height), Image.Resampling.BOX)


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """Four small real photos, JPEG and PNG."""
    root = tmp_path / "photos"
    root.mkdir()
    photo("astronaut", 96, 96).save(root / "astronaut.jpg", quality=90)
    photo("coffee", 120, 80).save(root / "coffee.png")
    photo("chelsea", 90, 60).save(root / "chelsea.jpg")
    photo("camera", 64, 64).save(root / "camera.png")
    return root


@pytest.fixture
def mixed_tree(tmp_path: Path) -> Path:
    """Seven readable images in every awkward mode, two unreadable files and a text file, in nested folders."""
    root = tmp_path / "mixed"
    (root / "nested" / "deeper").mkdir(parents=True)
    photo("astronaut", 80, 80).save(root / "astronaut.JPG")
    photo("camera", 70, 50).save(root / "grey.jpeg")  # mode L
    rgba = photo("coffee", 60, 40).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    rgba.save(root / "nested" / "rgba.png")
    photo("chelsea", 60, 40).quantize(16).save(root / "nested" / "palette.png", transparency=0)
    wide = (np.linspace(0, 65535, 48 * 48).reshape(48, 48)).astype(np.uint16)
    Image.fromarray(wide).save(root / "nested" / "deeper" / "wide16.png")
    photo("rocket", 64, 48).convert("CMYK").save(root / "cmyk.jpg")
    photo("hubble_deep_field", 37, 101).save(root / "nested" / "odd.webp")
    (root / "corrupt.jpg").write_bytes(np.random.default_rng(0).bytes(3000))
    full = io.BytesIO()
    photo("retina", 200, 200).save(full, "JPEG")
    (root / "truncated.jpg").write_bytes(full.getvalue()[: len(full.getvalue()) // 2])
    (root / "notes.txt").write_text("not an image")
    return root
