"""The cached sampler against the reference one: the same codes for the same generator seed, bit for bit."""

import pytest
import torch

from vqtune.models import GatedPixelCNN
from vqtune.models.priors import CachedSampler

BATCH = 3


def _prior(layers: int, kernel: int, condition_channels: int) -> GatedPixelCNN:
    torch.manual_seed(0)
    # dropout > 0: eval mode must turn it off on both paths
    return GatedPixelCNN(codebook_size=16, channels=8, layers=layers, kernel=kernel, dropout=0.3,
                         condition_channels=condition_channels).eval()


def _condition(prior: GatedPixelCNN, height: int, width: int):
    if prior.condition_channels == 0:
        return None
    return torch.randn(BATCH, prior.condition_channels, height, width, generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("height, width", [(5, 7), (8, 8)])
@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("condition_channels", [0, 4])
def test_fast_sampling_draws_the_reference_codes(height, width, kernel, condition_channels):
    prior = _prior(4, kernel, condition_channels)
    condition = _condition(prior, height, width)
    draws = {method: prior.sample((BATCH, height, width), temperature=0.7, condition=condition, method=method,
                                  generator=torch.Generator().manual_seed(11))
             for method in ("reference", "fast")}

    # The logits at every position, given the reference's codes before it: equal up to float rounding.
    codes = draws["reference"]
    features = prior.condition_features(condition, codes.shape)
    cached = CachedSampler(prior, codes.shape, features)
    with torch.no_grad():
        full = prior(codes, condition)  # position (r, c) depends only on the codes before it
        for r in range(height):
            for c in range(width):
                torch.testing.assert_close(cached.position_logits(r, c), full[:, :, r, c], rtol=1e-5, atol=1e-5,
                                           msg=lambda m: f"position ({r}, {c}): {m}")
                cached.put(r, c, codes[:, r, c])

    assert torch.equal(draws["fast"], draws["reference"])
    # not a degenerate draw: several codes in use
    assert codes.unique().numel() > 4


@pytest.mark.parametrize("layers", [1, 2, 12])
def test_fast_sampling_matches_at_any_depth_and_temperature(layers):
    # one layer (no stack above it), and more layers than the grid has rows (receptive field past the top)
    prior = _prior(layers, 3, 0)
    for temperature in (1.0, 2.5):
        reference, fast = (prior.sample((BATCH, 4, 6), temperature, torch.Generator().manual_seed(2), method=m)
                           for m in ("reference", "fast"))
        assert torch.equal(fast, reference)


def test_fast_is_the_default_and_same_seed_same_codes():
    prior = _prior(3, 3, 0)
    codes = prior.sample((BATCH, 5, 4), generator=torch.Generator().manual_seed(7))
    assert codes.shape == (BATCH, 5, 4) and codes.dtype == torch.long and 0 <= codes.min() and codes.max() < 16
    again = prior.sample((BATCH, 5, 4), generator=torch.Generator().manual_seed(7), method="fast")
    other = prior.sample((BATCH, 5, 4), generator=torch.Generator().manual_seed(8))
    assert torch.equal(codes, again) and not torch.equal(codes, other)


def test_the_condition_changes_the_draw():
    prior = _prior(3, 3, 4)
    condition = _condition(prior, 5, 7)
    draw = lambda s: prior.sample((BATCH, 5, 7), generator=torch.Generator().manual_seed(3), condition=s)  # noqa: E731
    assert torch.equal(draw(condition), draw(condition.clone()))
    assert not torch.equal(draw(20 * condition), draw(-20 * condition))


def test_sample_refuses_an_unknown_method_and_a_missing_condition():
    with pytest.raises(ValueError, match="method"):
        _prior(2, 3, 0).sample((1, 2, 2), method="slow")
    with pytest.raises(ValueError, match="condition"):
        _prior(2, 3, 4).sample((1, 2, 2))
    with pytest.raises(ValueError, match="unconditioned"):
        _prior(2, 3, 0).sample((1, 2, 2), condition=torch.zeros(1, 4, 2, 2))
