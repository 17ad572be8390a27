"""The one vocabulary of what the trainer measures: every key it reports after an epoch, with its meaning.

The trainer reports these keys, a search trial keeps the final ones as user attributes under the same names,
the objective of a search names one of them, and the README's metric table lists them (a test checks all
three agree). Imports nothing heavy: the config schema and the study layer read it too.
"""

from __future__ import annotations

import math
from typing import Mapping, NamedTuple


class Metric(NamedTuple):
    stage: str  # "vqvae" (stage 1), "prior" (stage 2), "both", or "trial" (measured by a search trial)
    unit: str
    meaning: str
    objective: bool  # may be the objective of a search (speeds and counts may not)
    levels: int = 1  # reported by models of at least this many levels (model.levels)


METRICS: dict[str, Metric] = {
    "epoch": Metric("both", "-", "the epoch's number; a run that trains both stages counts on through stage 2",
                    False),
    "val_recon_mse": Metric("vqvae", "MSE", "reconstruction error on the whole validation split, pixels in [0, 1]",
                            True),
    "val_nmse": Metric("vqvae", "ratio", "val_recon_mse / variance of the validation pixels", True),
    "val_psnr": Metric("vqvae", "dB", "peak signal-to-noise ratio of the validation reconstructions", True),
    "val_perplexity": Metric("vqvae", "codes", "exp(entropy) of code usage over the whole validation split (two "
                             "levels: the smaller of the two levels')", True),
    "val_usage": Metric("vqvae", "fraction", "share of the K codes used at least once on the validation split "
                        "(two levels: of the 2K codes of both)",
                        True),
    "val_active_codes": Metric("vqvae", "codes", "codes used at least once on the validation split (of K; two "
                               "levels: both levels' together, of 2K)", True),
    "rate_bits": Metric("vqvae", "bits/image", "latent cells x log2 K: the fixed-length code of one image (two "
                        "levels: of both grids)", True),
    "val_perplexity_top": Metric("vqvae", "codes", "two levels: val_perplexity of the top level's codes", True, 2),
    "val_perplexity_bottom": Metric("vqvae", "codes", "two levels: val_perplexity of the bottom level's codes", True,
                                    2),
    "val_active_codes_top": Metric("vqvae", "codes", "two levels: the top level's active codes", True, 2),
    "val_active_codes_bottom": Metric("vqvae", "codes", "two levels: the bottom level's active codes", True, 2),
    "rate_bits_top": Metric("vqvae", "bits/image", "two levels: the top grid's cells x log2 K", True, 2),
    "rate_bits_bottom": Metric("vqvae", "bits/image", "two levels: the bottom grid's cells x log2 K", True, 2),
    "val_code_bits": Metric("vqvae", "bits/image", "the validation codes under the unigram prior of the training "
                            "codes (Laplace-smoothed): what an entropy coder without context needs", True),
    "val_bits_per_dim": Metric("both", "bits/subpixel", "bound on the negative log-likelihood of the whole "
                               "two-stage model: code bits under the prior (stage 1: the unigram prior; stage 2: "
                               "the PixelCNN) plus the decoder's, over H*W*C", True),
    "val_distortion_bits_per_dim": Metric("both", "bits/subpixel", "the decoder's part of val_bits_per_dim: "
                                          "-log p(x | z), a discretised Gaussian with sigma fitted on the "
                                          "training split", True),
    "train_recon_mse": Metric("vqvae", "MSE", "reconstruction error on the training split, pixels in [0, 1]", True),
    "train_commitment": Metric("vqvae", "MSE", "commitment loss ||z_e - sg[e]||^2 before beta, training split",
                               True),
    "train_images_per_s": Metric("vqvae", "images/s", "training throughput", False),
    "val_images_per_s": Metric("vqvae", "images/s", "evaluation throughput", False),
    "val_nll": Metric("prior", "nats/latent", "the prior's negative log-likelihood of the validation codes", True),
    "val_bits_per_dim_unigram": Metric("prior", "bits/subpixel", "val_bits_per_dim with the unigram prior in "
                                       "place of the PixelCNN: the reference it must beat", False),
    "val_bits_per_dim_uniform": Metric("prior", "bits/subpixel", "val_bits_per_dim with the uniform prior "
                                       "(log K per latent)", False),
    "vqvae_epoch": Metric("prior", "-", "the stage-1 epoch whose checkpoint stage 2 encoded (best.pt: the lowest "
                          "val_recon_mse); a two-stage trial's stage-1 figures are that epoch's", False),
    "train_nll": Metric("prior", "nats/latent", "the prior's negative log-likelihood of the training codes", True),
    "latents_per_s": Metric("prior", "latents/s", "training throughput of the prior", False),
    "epoch_seconds": Metric("both", "s", "wall time of the epoch, evaluation included", False),
    "sample_seconds": Metric("trial", "s", "a search trial that trains a prior: time to draw and decode 64 "
                             "samples after training", False),
}


def epoch_metrics(stage: str, levels: int = 1) -> tuple[str, ...]:
    """What ``stage`` of a model of ``levels`` code grids reports after each of its epochs."""
    return tuple(name for name, m in METRICS.items() if m.stage in (stage, "both") and m.levels <= levels)


def objectives(stage: str, levels: int = 2) -> tuple[str, ...]:
    """The metrics a search whose trials end with ``stage`` can optimize."""
    return tuple(name for name in epoch_metrics(stage, levels) if METRICS[name].objective)


def final_metrics(stages: tuple[str, ...], levels: int = 1) -> tuple[str, ...]:
    """What a trial that trains ``stages`` knows at its end: every stage's last epoch, and ``sample_seconds``
    when it trained a prior."""
    names = {name for stage in stages for name in epoch_metrics(stage, levels)}
    if "prior" in stages:
        names |= {name for name, m in METRICS.items() if m.stage == "trial"}
    return tuple(name for name in METRICS if name in names)


def prior_warning(metrics: Mapping[str, float]) -> str | None:
    """One line when a trained prior does worse than the reference it must beat, else None.

    ``metrics`` holds a two-stage result's figures (an epoch's metrics, or a trial's user attributes): the bound
    with the PixelCNN, ``val_bits_per_dim``, above the same bound with the unigram prior of the training codes,
    ``val_bits_per_dim_unigram``, means the PixelCNN has not learnt even how often each code occurs (README,
    "Judging the whole model"): a defect of its training, not a rate to expect. None when either figure is
    missing or not finite (stage 1 alone, a diverged run).
    """
    try:
        bound, unigram = float(metrics["val_bits_per_dim"]), float(metrics["val_bits_per_dim_unigram"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (math.isfinite(bound) and math.isfinite(unigram)) or bound <= unigram:
        return None
    return (f"the prior is worse than the unigram prior by {bound - unigram:.3g} bits/dim (val_bits_per_dim "
            f"{bound:.4g} against val_bits_per_dim_unigram {unigram:.4g}); train it longer (prior.epochs), make it "
            "larger (prior.channels, prior.layers) or raise prior.lr")
