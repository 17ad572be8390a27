import pytest
import torch

from vqtune.models import VQVAE


@pytest.mark.parametrize("downsample", [1, 2, 3, 4])
def test_latent_grid_and_non_square_images(downsample):
    model = VQVAE(in_channels=3, hidden=8, residual_hidden=4, residual_blocks=1, downsample=downsample,
                  embedding_dim=4, codebook_size=16)
    x = torch.rand(2, 3, 32, 48) - 0.5
    out = model(x)
    grid = (32 // 2**downsample, 48 // 2**downsample)
    assert out.reconstruction.shape == x.shape
    assert out.vq.indices.shape == (2, *grid)
    codes = model.encode(x)  # one level: a 1-tuple of grids
    assert [grid.shape for grid in codes] == [(2, *grid)] and out.grids[0].shape == (2, *grid)
    assert model.decode(codes).shape == x.shape


def test_paper_architecture_shapes():
    model = VQVAE()  # CIFAR setting of the paper: 128 hidden, 32 residual hidden, 2 blocks, D 64, K 512
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    strided = [c for c in convs if c.stride == (2, 2)]
    assert [c.kernel_size for c in strided] == [(4, 4), (4, 4)]
    residual = [c.kernel_size for c in convs if c not in strided][1:-1]
    assert residual == [(3, 3), (1, 1), (3, 3), (1, 1)]
    assert model.quantizer.embedding.shape == (512, 64)


def test_grey_images():
    model = VQVAE(in_channels=1, hidden=8, residual_hidden=4, residual_blocks=1, downsample=2,
                  embedding_dim=4, codebook_size=16)
    assert model(torch.rand(3, 1, 28, 28) - 0.5).reconstruction.shape == (3, 1, 28, 28)
