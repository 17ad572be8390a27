"""Stage 2 on real photos: codes from a trained VQ-VAE, a PixelCNN prior, bits/dim, decoded samples."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from tests.data.conftest import photo, photo_dir  # noqa: F401  (a fixture)
from vqtune.cli import main
from vqtune.config import PriorConfig
from vqtune.train import encode_dataset, fit, sample_images
from vqtune.train import _codes


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    from vqtune.config import TrainConfig

    run = tmp_path_factory.mktemp("stage1") / "run"
    config = TrainConfig.model_validate({
        "data": {"source": "skimage-photos", "resolution": 16, "crops_per_image": 64},
        "model": {"hidden": 16, "residual_hidden": 8, "residual_blocks": 1, "downsample": 2, "embedding_dim": 8,
                  "codebook_size": 32},
        "quantizer": {"dead_code_steps": 10},
        "optim": {"lr": 3e-3, "batch_size": 16, "epochs": 3},
        "device": "cpu",
        "run_dir": str(run),
    })
    return fit(config), config


def test_codes_are_encoded_once_and_cached(stage1, monkeypatch):
    result, _ = stage1
    codes = encode_dataset(result.run_dir / "best.pt")
    assert codes.train.shape[1:] == (4, 4) and codes.train.dtype == torch.int64
    assert 0 <= int(codes.train.min()) and int(codes.train.max()) < 32
    assert codes.image_shape == (3, 16, 16) and 0 < codes.val_recon_mse < 0.05
    assert codes.sigma > 0 and codes.val_distortion_nats > 0
    monkeypatch.setattr(_codes, "_encode", lambda *a, **k: pytest.fail("encoded again"))
    again = encode_dataset(result.run_dir / "best.pt")
    assert torch.equal(again.train, codes.train)


def test_prior_learns_the_codes_and_samples_decode(stage1, tmp_path):
    result, config = stage1
    prior_config = config.model_copy(update={
        "prior": PriorConfig(vqvae_checkpoint=result.run_dir / "best.pt", channels=16, layers=3, lr=3e-3,
                             batch_size=32, epochs=3),
        "run_dir": tmp_path / "prior",
    })
    fitted = fit(prior_config)
    history = fitted.history
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["val_nll"] < math.log(32)  # better than a uniform prior over 32 codes
    assert history[-1]["val_nll"] < history[0]["val_nll"]
    final = history[-1]
    # the bound with the PixelCNN beats the same bound with the unigram and the uniform prior
    assert 0 < final["val_bits_per_dim"] < min(final["val_bits_per_dim_unigram"], final["val_bits_per_dim_uniform"])
    assert final["val_bits_per_dim_uniform"] < 8
    subpixels, latents = 3 * 16 * 16, 4 * 4
    assert final["val_bits_per_dim_uniform"] == pytest.approx(
        final["val_distortion_bits_per_dim"] + latents * math.log2(32) / subpixels)
    assert final["val_bits_per_dim"] == pytest.approx(
        final["val_distortion_bits_per_dim"] + latents * final["val_nll"] / (subpixels * math.log(2)))
    assert (fitted.run_dir / "prior_best.pt").exists() and (fitted.run_dir / "prior_metrics.jsonl").exists()

    grid = sample_images(fitted.run_dir, n=12, seed=1, device="cpu")
    assert isinstance(grid, Image.Image) and grid.width > grid.height  # 8 per row, 2 rows
    pixels = torch.from_numpy(np.array(grid)).float()
    assert torch.equal(pixels, torch.from_numpy(np.array(sample_images(fitted.run_dir, n=12, seed=1,
                                                                          device="cpu"))).float())
    assert pixels.std() > 1.0  # decoded images, not a blank canvas


def test_train_with_a_prior_section_then_sample(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["train", "--set", "data.resolution=16", "--set", "data.crops_per_image=16", "--set", "model.hidden=8",
            "--set", "model.residual_hidden=4", "--set", "model.embedding_dim=4", "--set", "model.codebook_size=16",
            "--set", "optim.epochs=1", "--set", "prior.layers=2", "--set", "prior.channels=8",
            "--set", "prior.epochs=1", "--set", "device=cpu"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "prior val nll" in out and "next: vqtune sample runs/vqvae" in out
    assert main(["sample", "runs/vqvae", "--n", "8", "-o", "samples.png"]) == 0
    assert Image.open(tmp_path / "samples.png").size[0] > 8 * 16

    assert main(["train", "--set", "prior.vqvae_checkpoint=missing.pt", "--set", "device=cpu"]) == 2
    assert "prior.vqvae_checkpoint: missing.pt: no such checkpoint file" in capsys.readouterr().err
    assert main(["sample", str(tmp_path), "-o", "x.png"]) == 2
    assert "no prior_best.pt here" in capsys.readouterr().err


def test_images_added_to_the_folder_miss_the_code_cache(tmp_path, photo_dir):
    from vqtune.config import TrainConfig

    config = TrainConfig.model_validate({
        "data": {"source": "folder", "path": str(photo_dir), "cache_dir": str(tmp_path / "cache"), "resolution": 16,
                 "crops_per_image": 8},
        "model": {"hidden": 8, "residual_hidden": 4, "residual_blocks": 1, "downsample": 2, "embedding_dim": 4,
                  "codebook_size": 16},
        "optim": {"epochs": 1, "batch_size": 8}, "device": "cpu", "run_dir": str(tmp_path / "run"),
    })
    checkpoint = fit(config).run_dir / "best.pt"
    before = encode_dataset(checkpoint)
    photo("rocket", 80, 64).save(photo_dir / "rocket.png")
    after = encode_dataset(checkpoint)
    assert len(after.train) + len(after.val) == len(before.train) + len(before.val) + 8  # the new photo's crops
