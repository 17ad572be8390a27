"""A two-level model on the bundled photos at 64x64: both levels' metrics, both priors, decoded samples."""

import math

import pytest
import torch
from PIL import Image

from vqtune.cli import main
from vqtune.config import load_train_config
from vqtune.errors import ConfigError
from vqtune.train import encode_dataset

SETTINGS = ["data.resolution=64", "data.crops_per_image=6", "model.hidden=16", "model.residual_hidden=8",
            "model.residual_blocks=1", "model.embedding_dim=8", "model.codebook_size=32", "model.levels=2",
            "quantizer.dead_code_steps=5", "optim.epochs=2", "optim.batch_size=16", "device=cpu",
            'prior={"channels": 8, "layers": 2, "batch_size": 16, "epochs": 3, "lr": 0.01}']


def test_a_two_level_model_trains_both_priors_and_samples(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *(a for s in [*SETTINGS, f"run_dir={run}"] for a in ("--set", s))]) == 0
    import json
    stage1 = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last = stage1[-1]
    # 64x64 -> bottom 16x16, top 8x8, K 32: 5 bits a cell
    assert (last["rate_bits_top"], last["rate_bits_bottom"], last["rate_bits"]) == (320.0, 1280.0, 1600.0)
    assert last["val_active_codes"] == last["val_active_codes_top"] + last["val_active_codes_bottom"]
    assert last["val_perplexity"] == min(last["val_perplexity_top"], last["val_perplexity_bottom"])
    assert last["val_usage"] == pytest.approx(last["val_active_codes"] / 64)

    codes = encode_dataset(run / "best.pt")
    assert codes.levels == 2 and codes.train_top.shape[1:] == (8, 8) and codes.train.shape[1:] == (16, 16)
    prior = [json.loads(line) for line in (run / "prior_metrics.jsonl").read_text().splitlines()][-1]
    # the uniform reference counts both grids' codes: (8*8 + 16*16) log K, plus the decoder's bits
    uniform = (codes.latents * math.log(32) + codes.val_distortion_nats) / (math.log(2) * codes.subpixels)
    assert codes.latents == 320 and prior["val_bits_per_dim_uniform"] == pytest.approx(uniform)
    assert prior["val_bits_per_dim"] < prior["val_bits_per_dim_uniform"]

    assert main(["sample", str(run), "--n", "4", "-o", str(tmp_path / "samples.png")]) == 0
    grid = Image.open(tmp_path / "samples.png")
    assert grid.width >= 4 * 64  # four decoded 64x64 samples in a row
    assert "two levels" not in capsys.readouterr().err


@pytest.mark.parametrize("settings, message", [
    (["model.top_downsample=2"], "model.top_downsample applies to model.levels 2 only"),
    (["model.levels=2", "model.downsample=3", "data.resolution=40"],
     "not divisible by 2^(model.downsample + model.top_downsample) = 16"),
])
def test_two_level_settings_that_do_not_fit_are_refused_by_name(settings, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("^", r"\^")
                       .replace("+", r"\+")):
        load_train_config(None, settings)
