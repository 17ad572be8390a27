import pytest
import torch

from vqtune.models import GatedPixelCNN


def _dependence(model: GatedPixelCNN, height: int, width: int, r: int, c: int) -> torch.Tensor:
    """(H, W) bool: which input positions the logits at (r, c) depend on (non-zero gradient)."""
    torch.manual_seed(1)
    x = torch.randn(1, model.embedding.embedding_dim, height, width, requires_grad=True)
    condition = torch.randn(1, model.condition_channels, height, width) if model.condition_channels else None
    model.forward_embedded(x, condition)[0, :, r, c].pow(2).sum().backward()
    return x.grad[0].abs().sum(0) > 0


@pytest.mark.parametrize("condition_channels", [0, 3])
@pytest.mark.parametrize("height, width", [(5, 7), (7, 4), (6, 6)])
def test_logits_depend_on_exactly_the_earlier_positions(height, width, condition_channels):
    torch.manual_seed(0)
    # Enough layers that the receptive field covers the whole grid: every earlier position must count.
    # The condition is known in full and may be seen everywhere; the codes only before (r, c).
    model = GatedPixelCNN(codebook_size=8, channels=6, layers=height + width, kernel=3,
                          condition_channels=condition_channels)
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


def test_reference_sampling_evaluates_the_network_once_per_position():
    torch.manual_seed(0)
    model = GatedPixelCNN(codebook_size=8, channels=6, layers=2).eval()
    calls = {"n": 0}
    logits = model.logits

    def counting(*args, **kwargs):
        calls["n"] += 1
        return logits(*args, **kwargs)

    model.logits = counting
    generator = torch.Generator().manual_seed(3)
    codes = model.sample((4, 3, 5), generator=generator, method="reference")
    assert codes.shape == (4, 3, 5) and codes.min() >= 0 and codes.max() < 8
    assert calls["n"] == 3 * 5
    again = model.sample((4, 3, 5), generator=torch.Generator().manual_seed(3), method="reference")
    assert torch.equal(codes, again)


def test_the_condition_reaches_every_position_and_an_unconditioned_prior_keeps_its_parameter_names():
    torch.manual_seed(0)
    model = GatedPixelCNN(codebook_size=8, channels=6, layers=2, condition_channels=3)
    codes = torch.randint(0, 8, (2, 4, 5))
    condition = torch.randn(2, 3, 4, 5)
    # every position's logits, the first one's included, move with the condition
    assert (model(codes, condition) - model(codes, condition + 1.0)).abs().amax(dim=1).gt(0).all()

    # Checkpoints of unconditioned priors written before conditioning existed still load.
    plain = GatedPixelCNN(codebook_size=8, channels=6, layers=2)
    layer = ["vertical", "vertical_to_horizontal", "horizontal", "horizontal_out"]
    expected = {"embedding.weight", "head.1.weight", "head.1.bias", "head.3.weight", "head.3.bias",
                *(f"layers.{i}.{name}.{p}" for i in range(2) for name in layer for p in ("weight", "bias"))}
    assert set(plain.state_dict()) == expected


@pytest.mark.parametrize("condition, message", [
    (None, "conditioned: pass condition of shape \\(2, 3, 4, 5\\)"),
    (torch.zeros(2, 3, 4, 4), "expected \\(2, 3, 4, 5\\)"),
    (torch.zeros(2, 2, 4, 5), "expected \\(2, 3, 4, 5\\)"),
])
def test_a_missing_or_misshapen_condition_is_a_clear_error(condition, message):
    model = GatedPixelCNN(codebook_size=8, channels=6, layers=2, condition_channels=3)
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(2, 4, 5, dtype=torch.long), condition)
    with pytest.raises(ValueError, match="unconditioned"):
        GatedPixelCNN(codebook_size=8, channels=6, layers=2)(torch.zeros(2, 4, 5, dtype=torch.long),
                                                              torch.zeros(2, 3, 4, 5))
