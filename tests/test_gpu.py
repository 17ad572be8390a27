"""The CUDA path of the trainer: data on the device as uint8, bf16 autocast, channels-last.

CI has no GPU: these skip there and run wherever CUDA is visible.
"""

import math

import pytest
import torch

from vqtune.train import Reporter, fit, load_vqvae

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible"),
]


def test_fit_on_cuda_with_bf16_and_auto_device(tiny_config):
    devices = []

    class Device(Reporter):
        def on_start(self, info):
            devices.append(info.device)

    config = tiny_config.model_copy(update={"device": "auto"})
    result = fit(config, Device())
    assert devices == ["cuda"]
    assert next(result.model.parameters()).is_cuda
    final = result.final
    assert all(math.isfinite(v) for v in final.values())
    assert final["val_recon_mse"] < result.history[0]["val_recon_mse"] * 1.5
    model, _ = load_vqvae(result.run_dir / "last.pt", device="cuda")
    assert next(model.parameters()).is_cuda


def test_quantizer_distances_stay_float32_under_autocast():
    from vqtune.models import VectorQuantizer

    vq = VectorQuantizer(64, 8).cuda().eval()
    z = torch.randn(4, 8, 8, 8, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = vq(z)
    assert torch.equal(out.indices, vq(z).indices)
