"""The one vocabulary of what the trainer measures: every key it reports after an epoch, with its meaning.

The trainer reports these keys, a search trial keeps the final ones as user attributes under the same names,
the objective of a search names one of them, and the README's metric table lists them (a test checks all
three agree). Imports nothing heavy: the config schema and the study layer read it too.
"""

from __future__ import annotations

from typing import NamedTuple


class Metric(NamedTuple):
    stage: str  # "vqvae" (stage 1), "prior" (stage 2) or "both"
    unit: str
    meaning: str
    objective: bool  # may be the objective of a search (speeds and counts may not)


METRICS: dict[str, Metric] = {
    "epoch": Metric("both", "-", "the epoch's number; a run that trains both stages counts on through stage 2",
                    False),
    "val_recon_mse": Metric("vqvae", "MSE", "reconstruction error on the whole validation split, pixels in [0, 1]",
                            True),
    "val_nmse": Metric("vqvae", "ratio", "val_recon_mse / variance of the validation pixels", True),
    "val_psnr": Metric("vqvae", "dB", "peak signal-to-noise ratio of the validation reconstructions", True),
    "val_perplexity": Metric("vqvae", "codes", "exp(entropy) of code usage over the whole validation split", True),
    "val_usage": Metric("vqvae", "fraction", "share of the K codes used at least once on the validation split",
                        True),
    "train_recon_mse": Metric("vqvae", "MSE", "reconstruction error on the training split, pixels in [0, 1]", True),
    "train_commitment": Metric("vqvae", "MSE", "commitment loss ||z_e - sg[e]||^2 before beta, training split",
                               True),
    "train_images_per_s": Metric("vqvae", "images/s", "training throughput", False),
    "val_images_per_s": Metric("vqvae", "images/s", "evaluation throughput", False),
    "val_nll": Metric("prior", "nats/latent", "the prior's negative log-likelihood of the validation codes", True),
    "val_bits_per_dim": Metric("prior", "bits/subpixel", "bound on the image negative log-likelihood: prior "
                               "cross-entropy plus the decoder's reconstruction NLL", True),
    "train_nll": Metric("prior", "nats/latent", "the prior's negative log-likelihood of the training codes", True),
    "latents_per_s": Metric("prior", "latents/s", "training throughput of the prior", False),
    "epoch_seconds": Metric("both", "s", "wall time of the epoch, evaluation included", False),
}


def objectives(stage: str) -> tuple[str, ...]:
    """The metrics a search over ``stage`` can optimize."""
    return tuple(name for name, m in METRICS.items() if m.objective and m.stage in (stage, "both"))
