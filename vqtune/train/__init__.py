"""Training: one ``fit`` for stage 1 (the VQ-VAE), stage 2 (the PixelCNN prior) or both; the codes between
them; sampling. Talks to the outside only through a :class:`Reporter`; imports neither Ray nor Optuna."""

from vqtune.train._build import build_model, load_vqvae, resolve_device
from vqtune.train._checkpoint import CHECKPOINT_FORMAT, PriorFields, fields_of, load_checkpoint, save_checkpoint
from vqtune.train._codes import Codes, encode_dataset
from vqtune.train._fit import FitResult, fit
from vqtune.train._bound import bits_per_dim, discretized_gaussian_nats, unigram_code_nats
from vqtune.train._prior import load_prior
from vqtune.train._progress import ProgressReporter
from vqtune.train._reporter import Reporter, RunInfo
from vqtune.train._sample import sample_images
from vqtune.train._timing import StepTime, forward_flops, time_prior_steps, time_vqvae_steps

__all__ = [
    "CHECKPOINT_FORMAT",
    "Codes",
    "FitResult",
    "PriorFields",
    "ProgressReporter",
    "Reporter",
    "RunInfo",
    "StepTime",
    "bits_per_dim",
    "build_model",
    "discretized_gaussian_nats",
    "encode_dataset",
    "fields_of",
    "fit",
    "forward_flops",
    "load_checkpoint",
    "load_prior",
    "load_vqvae",
    "resolve_device",
    "sample_images",
    "save_checkpoint",
    "time_prior_steps",
    "time_vqvae_steps",
    "unigram_code_nats",
]
