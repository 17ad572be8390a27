"""The negative log-likelihood bound of the whole two-stage model, in bits per subpixel.

For an image x with codes z = q(x) and any prior p(z): -log p(x) <= -log p(z) - log p(x | z), because
p(x) = sum_z' p(z') p(x | z') >= p(z) p(x | z). vqtune reports it as

    bits/dim = (-log p(z) - log p(x | z)) / (H * W * C * ln 2),   averaged over the validation images,

with, for p(z), the unigram model of the training codes during stage 1 and the PixelCNN in stage 2, and for
p(x | z) a discretised Gaussian around the clamped reconstruction: the exact probability mass of each
subpixel's 1/255-wide bin, the tails folded into the bins of 0 and 255, with one sigma fitted on the training
split. Both are true distributions that do not look at the validation images, so the figure is a true upper
bound at every MSE (0 included).
"""

from __future__ import annotations

import math

import torch

HALF_BIN = 1.0 / 510  # half the width of one of the 256 bins of a subpixel in [0, 1]
MIN_SIGMA = 1e-6  # a perfect reconstruction still needs a positive sigma (its bin then holds all the mass)
MIN_LOG_P = -1e4  # nats; reached only by a residual of more than 140 sigma, never in practice


def discretized_gaussian_nats(images_u8: torch.Tensor, mean: torch.Tensor, sigma: float) -> torch.Tensor:
    """-log P(x | mean, sigma) of every subpixel, in nats, as float64 of the shape of ``images_u8``.

    ``images_u8``: uint8 values v, so x = v / 255; ``mean``: the reconstruction on the [0, 1] scale (clamped
    here). P = Phi((x + 1/510 - mean) / sigma) - Phi((x - 1/510 - mean) / sigma), with the lower edge at -inf
    for v = 0 and the upper at +inf for v = 255, computed from log Phi so that no tail underflows.
    """
    v = images_u8.to(torch.float64)
    mean = mean.to(torch.float64).clamp(0.0, 1.0)
    sigma = max(float(sigma), MIN_SIGMA)
    x = v / 255
    lower = torch.where(v == 0, -math.inf, (x - HALF_BIN - mean) / sigma)
    upper = torch.where(v == 255, math.inf, (x + HALF_BIN - mean) / sigma)
    # Phi(b) - Phi(a) = Phi(-a) - Phi(-b): take the side where both edges are not above 0, which keeps the
    # difference of two numbers near 1 out of the computation.
    flip = lower > 0
    a, b = torch.where(flip, -upper, lower), torch.where(flip, -lower, upper)
    log_b, log_a = torch.special.log_ndtr(b), torch.special.log_ndtr(a)
    log_p = log_b + torch.log(-torch.expm1(log_a - log_b))
    return -log_p.clamp_min(MIN_LOG_P)


def unigram_code_nats(train_counts: torch.Tensor, val_counts: torch.Tensor) -> float:
    """-log q(z) of all the validation codes together, in nats, under the unigram prior of the training codes,
    Laplace-smoothed: q(k) = (n_k + 1) / (N + K). Counts are (K,) per code."""
    train_counts, val_counts = train_counts.double(), val_counts.double()
    log_q = torch.log((train_counts + 1) / (train_counts.sum() + len(train_counts)))
    return float(-(val_counts * log_q).sum())


def bits_per_dim(code_nats_per_image: float, distortion_nats_per_image: float, subpixels: int) -> float:
    """(-log p(z) - log p(x | z)) / (subpixels * ln 2) for one image."""
    return (code_nats_per_image + distortion_nats_per_image) / (subpixels * math.log(2))
