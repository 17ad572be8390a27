"""Quantizers: the :class:`Quantizer` protocol an autoencoder uses, its :class:`QuantizerOutput`, and each kind
of quantizer in its own module, named in :data:`QUANTIZERS` by the ``kind`` of its config section.

Adding a kind: a module with the class (the members of :class:`Quantizer`, ``from_options`` among them), one
line in :data:`QUANTIZERS`, and its config section in ``vqtune/config/_quantizer.py``.
"""

from typing import Dict, Type

from vqtune.models.quantizers._codebook import EMAUpdate, KMeansInit, LossUpdate, Restarts
from vqtune.models.quantizers._estimators import ESTIMATORS, rotate_to, straight_through
from vqtune.models.quantizers._fsq import RECOMMENDED_LEVELS, FiniteScalarQuantizer
from vqtune.models.quantizers._protocol import CodeUsage, Quantizer, QuantizerOutput, perplexity_of
from vqtune.models.quantizers._vq import VectorQuantizer

# Each kind of quantizer by the ``kind`` of its config section.
QUANTIZERS: Dict[str, Type[Quantizer]] = {
    "vq": VectorQuantizer,
    "fsq": FiniteScalarQuantizer,
}

__all__ = [
    "ESTIMATORS",
    "QUANTIZERS",
    "RECOMMENDED_LEVELS",
    "CodeUsage",
    "EMAUpdate",
    "FiniteScalarQuantizer",
    "KMeansInit",
    "LossUpdate",
    "Quantizer",
    "QuantizerOutput",
    "Restarts",
    "VectorQuantizer",
    "perplexity_of",
    "rotate_to",
    "straight_through",
]
