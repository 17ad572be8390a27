"""The CUDA path of the trainer, as a user would notice it: data on the device as uint8, bf16 autocast with the
codebook kept in float32, channels-last, checkpoints that load anywhere, and the pinned-memory fallback.

CI has no GPU: these skip there and run wherever CUDA is visible (``make gpu-check`` runs them first).
"""

import math

import pytest
import torch

from vqtune.data import load_images
from vqtune.train import Reporter, fit, load_vqvae
from vqtune.data import _placement
from vqtune.train._images import to_model_space
from vqtune.train._vqvae import VQVAEStage

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible"),
]


@pytest.fixture
def cuda_config(tiny_config):
    return tiny_config.model_copy(update={"device": "auto", "optim": tiny_config.optim.model_copy(
        update={"epochs": 3})})


def test_a_run_on_cuda_lowers_val_mse_and_keeps_the_codebook_in_float32(cuda_config):
    devices = []

    class Device(Reporter):
        def on_start(self, info):
            devices.append(info.device)

    result = fit(cuda_config, Device())
    assert devices == ["cuda"]
    model = result.models["vqvae"]
    assert next(model.parameters()).is_cuda
    assert all(math.isfinite(v) for v in result.final.values())
    assert result.history[-1]["val_recon_mse"] < result.history[0]["val_recon_mse"]
    # bf16 autocast runs the convolutions; the codebook and its EMA statistics stay float32
    quantizer = model.quantizer
    for name in ("embedding", "ema_cluster_size", "ema_embed_sum"):
        assert getattr(quantizer, name).dtype == torch.float32, name


def test_the_dataset_lives_on_the_device_as_uint8(cuda_config):
    stage = VQVAEStage(cuda_config, load_images(cuda_config.data), torch.device("cuda"))
    assert stage.images.train.is_cuda and stage.images.val.is_cuda
    assert stage.images.train.dtype == torch.uint8


def test_a_dataset_too_large_for_the_gpu_is_pinned_and_still_trains(cuda_config, monkeypatch):
    monkeypatch.setattr(_placement, "fits_on_device", lambda dataset_bytes, free_bytes: False)
    stage = VQVAEStage(cuda_config, load_images(cuda_config.data), torch.device("cuda"))
    assert not stage.images.train.is_cuda and stage.images.train.is_pinned()
    result = fit(cuda_config.model_copy(update={"run_dir": cuda_config.run_dir.parent / "pinned"}))
    assert result.history[-1]["val_recon_mse"] < result.history[0]["val_recon_mse"]


def test_nearest_codes_under_autocast_equal_a_float64_search_on_the_same_encoder_outputs(cuda_config):
    result = fit(cuda_config)
    model = result.models["vqvae"].eval()
    captured = []
    model.quantizer.register_forward_pre_hook(lambda module, args: captured.append(args[0].detach()))
    x = to_model_space(load_images(cuda_config.data).val[:64].cuda())
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        indices = model(x).vq.indices.flatten().cpu()
    z = captured[0].double().permute(0, 2, 3, 1).reshape(-1, captured[0].shape[1]).cpu()
    codes = model.quantizer.embedding.double().cpu()
    distances = torch.cdist(z, codes)
    nearest = distances.argmin(1)
    two = distances.topk(2, largest=False).values
    clear = (two[:, 1] - two[:, 0]) > 1e-4 * two[:, 1]  # leave out exact near-ties
    assert clear.float().mean() > 0.9
    assert torch.equal(indices[clear], nearest[clear])


def test_a_checkpoint_written_on_cuda_loads_on_the_cpu(cuda_config, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # compare float32 with float32
    result = fit(cuda_config)
    gpu_model = result.models["vqvae"].eval().float()
    cpu_model, config = load_vqvae(result.run_dir / "best.pt", device="cpu")
    assert not next(cpu_model.parameters()).is_cuda and config.device == "auto"
    x = to_model_space(load_images(cuda_config.data).val[:8])
    gpu_model.load_state_dict(cpu_model.state_dict())  # the best epoch's weights on both sides
    with torch.no_grad():
        on_cpu = cpu_model(x.contiguous()).reconstruction
        on_gpu = gpu_model(x.cuda()).reconstruction.cpu()
    assert torch.allclose(on_cpu, on_gpu, atol=1e-3)


def test_quantizer_distances_stay_float32_under_autocast():
    from vqtune.models import VectorQuantizer

    vq = VectorQuantizer(64, 8).cuda().eval()
    z = torch.randn(4, 8, 8, 8, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = vq(z)
    assert torch.equal(out.indices, vq(z).indices)


def test_a_two_level_model_and_its_priors_train_and_sample_on_cuda(cuda_config, tmp_path):
    from vqtune.config import PriorConfig
    from vqtune.train import sample_images

    config = cuda_config.model_copy(update={
        "data": cuda_config.data.model_copy(update={"resolution": 32}),
        "model": cuda_config.model.model_copy(update={"levels": 2}),
        "optim": cuda_config.optim.model_copy(update={"epochs": 2}),
        "prior": PriorConfig(channels=16, layers=3, batch_size=32, epochs=2),
        "run_dir": tmp_path / "two-levels",
    })
    result = fit(config)
    stage1 = result.stage_history["vqvae"][-1]
    assert stage1["rate_bits"] == stage1["rate_bits_top"] + stage1["rate_bits_bottom"]
    assert math.isfinite(result.final["val_bits_per_dim"])
    grid = sample_images(result.run_dir, n=8, device="cuda")
    assert grid.width >= 8 * 32 // 2  # eight decoded 32x32 samples
