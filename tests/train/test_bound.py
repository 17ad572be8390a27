"""The two-stage bound: the decoder term is the exact mass of a discretised Gaussian, checked against direct
numerical integration, and stage 1 reports rate, code bits and bits/dim that add up."""

import math

import mpmath
import pytest
import torch

from vqtune.train import discretized_gaussian_nats, fit, unigram_code_nats

mpmath.mp.dps = 50


def integrated_nats(v: int, mean: float, sigma: float) -> float:
    """-log of the Gaussian's mass over the bin of v, integrated numerically at 50 digits."""
    x = mpmath.mpf(v) / 255
    lower = -mpmath.inf if v == 0 else x - mpmath.mpf(1) / 510
    upper = mpmath.inf if v == 255 else x + mpmath.mpf(1) / 510
    density = lambda t: mpmath.exp(-((t - mean) ** 2) / (2 * sigma**2)) / (sigma * mpmath.sqrt(2 * mpmath.pi))
    # split the range at the mean, where a narrow density's mass is, so the quadrature sees it
    points = [lower, *([mpmath.mpf(mean)] if lower < mean < upper else []), upper]
    return float(-mpmath.log(mpmath.quad(density, points)))


CASES = [
    (128, 128 / 255, 0.01),      # centred on its bin
    (128, 0.5, 0.001),           # a narrow density near a bin edge
    (0, 0.0, 0.02),              # the lower tail folded into bin 0
    (0, 0.3, 0.05),              # bin 0 far in the tail
    (255, 1.0, 0.02),            # the upper tail folded into bin 255
    (255, 0.6, 0.05),
    (10, 0.9, 0.05),             # 17 sigma away: the mass is about 1e-66
    (200, 0.1, 0.08),
    (37, 37 / 255, 1e-6),        # a perfect reconstruction: all the mass in its bin
    (3, 0.5, 0.5),               # a wide density: the bin holds little
]


@pytest.mark.parametrize("v, mean, sigma", CASES)
def test_decoder_nats_equal_direct_integration(v, mean, sigma):
    ours = float(discretized_gaussian_nats(torch.tensor([v], dtype=torch.uint8), torch.tensor([mean], dtype=torch.float64), sigma))
    assert ours == pytest.approx(integrated_nats(v, mean, sigma), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("mean, sigma", [(0.0, 0.01), (0.5, 0.003), (0.97, 0.2), (0.2, 1e-6)])
def test_the_256_bins_hold_all_the_mass(mean, sigma):
    values = torch.arange(256, dtype=torch.uint8)
    nats = discretized_gaussian_nats(values, torch.full((256,), mean, dtype=torch.float64), sigma)
    assert float(torch.exp(-nats).sum()) == pytest.approx(1.0, abs=1e-12)


def test_the_bound_never_goes_negative_even_at_zero_mse():
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    exact = images.double() / 255
    for sigma in (0.0, 1e-7, 1e-4, 1e-2):
        nats = discretized_gaussian_nats(images, exact, sigma)
        assert torch.all(nats >= 0) and torch.isfinite(nats).all()
    assert float(discretized_gaussian_nats(images, exact, 0.0).sum()) == pytest.approx(0.0, abs=1e-9)
    # the old density approximation, 0.5 log(2 pi e sigma^2) + log 255 per subpixel, is negative here
    assert 0.5 * math.log(2 * math.pi * math.e * 1e-7) + math.log(255) < 0


def test_unigram_code_nats_by_hand():
    train, val = torch.tensor([3, 1, 0]), torch.tensor([1, 2, 1])
    q = [(3 + 1) / (4 + 3), (1 + 1) / (4 + 3), (0 + 1) / (4 + 3)]
    expected = -(1 * math.log(q[0]) + 2 * math.log(q[1]) + 1 * math.log(q[2]))
    assert unigram_code_nats(train, val) == pytest.approx(expected)


def test_stage_1_reports_rate_and_a_bound_that_adds_up(tiny_config):
    final = fit(tiny_config).final
    subpixels, cells, k = 3 * 16 * 16, 4 * 4, 32
    assert final["rate_bits"] == cells * math.log2(k)
    assert 0 < final["val_code_bits"] < 2 * final["rate_bits"]
    assert final["val_bits_per_dim"] == pytest.approx(
        final["val_code_bits"] / subpixels + final["val_distortion_bits_per_dim"])
    assert 0 < final["val_distortion_bits_per_dim"] < 8
