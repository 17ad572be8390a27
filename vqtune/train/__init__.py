"""Training loops. Talks to the outside only through a :class:`Reporter`; imports neither Ray nor Optuna."""

from vqtune.train._build import build_model, load_vqvae, resolve_device
from vqtune.train._checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from vqtune.train._fit import FitResult, evaluate, fit_vqvae
from vqtune.train._codes import Codes, encode_dataset
from vqtune.train._prior import fit_prior, load_prior
from vqtune.train._progress import ProgressReporter
from vqtune.train._reporter import Reporter, RunInfo
from vqtune.train._sample import sample_images

__all__ = [
    "CHECKPOINT_FORMAT",
    "Codes",
    "FitResult",
    "ProgressReporter",
    "Reporter",
    "RunInfo",
    "build_model",
    "encode_dataset",
    "evaluate",
    "fit_prior",
    "fit_vqvae",
    "load_checkpoint",
    "load_prior",
    "load_vqvae",
    "resolve_device",
    "sample_images",
    "save_checkpoint",
]
