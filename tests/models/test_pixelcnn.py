import pytest
import torch

from vqtune.models import GatedPixelCNN


def _dependence(model: GatedPixelCNN, height: int, width: int, r: int, c: int) -> torch.Tensor:
    """(H, W) bool: which input positions the logits at (r, c) depend on (non-zero gradient)."""
    torch.manual_seed(1)
    x = torch.randn(1, model.embedding.embedding_dim, height, width, requires_grad=True)
    model.forward_embedded(x)[0, :, r, c].pow(2).sum().backward()
    return x.grad[0].abs().sum(0) > 0


@pytest.mark.parametrize("height, width", [(5, 7), (7, 4), (6, 6)])
def test_logits_depend_on_exactly_the_earlier_positions(height, width):
    torch.manual_seed(0)
    # Enough layers that the receptive field covers the whole grid: every earlier position must count.
    model = GatedPixelCNN(codebook_size=8, channels=6, layers=height + width, kernel=3)
    for r in range(height):
        for c in range(width):
            seen = _dependence(model, height, width, r, c)
            earlier = torch.zeros(height, width, dtype=torch.bool)
            earlier.view(-1)[: r * width + c] = True  # raster order
            assert torch.equal(seen, earlier), f"position ({r}, {c}):\n{seen.int()}"


def test_receptive_field_grows_with_depth_and_never_reaches_ahead():
    torch.manual_seed(0)
    model = GatedPixelCNN(codebook_size=8, channels=6, layers=2, kernel=3)
    seen = _dependence(model, 8, 9, 5, 4)
    # two 3x3 layers: the vertical stack reaches rows 2-4 within 2 columns either side (one row per layer,
    # plus the shift into the horizontal stack), the horizontal stack columns 1-3 of row 5
    # (the A layer two to the left, the B layer one more)
    expected = torch.zeros(8, 9, dtype=torch.bool)
    expected[2:5, 2:7] = True
    expected[5, 1:4] = True
    assert torch.equal(seen, expected)


def test_sampling_draws_valid_codes_with_one_evaluation_per_position():
    torch.manual_seed(0)
    model = GatedPixelCNN(codebook_size=8, channels=6, layers=2).eval()
    calls = {"n": 0}
    forward = model.forward

    def counting(*args, **kwargs):
        calls["n"] += 1
        return forward(*args, **kwargs)

    model.forward = counting
    generator = torch.Generator().manual_seed(3)
    codes = model.sample((4, 3, 5), generator=generator)
    assert codes.shape == (4, 3, 5) and codes.min() >= 0 and codes.max() < 8
    assert calls["n"] == 3 * 5
    again = model.sample((4, 3, 5), generator=torch.Generator().manual_seed(3))
    assert torch.equal(codes, again)
