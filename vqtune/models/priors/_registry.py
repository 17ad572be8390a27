"""The prior kinds by name, and the prior over an autoencoder's grids built from one of them."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from vqtune.models.priors._pixelcnn import GatedPixelCNN
from vqtune.models.priors._protocol import CodesPrior
from vqtune.models.priors._two_level import TwoLevelPrior

# A config's ``prior.kind`` -> its class (a :class:`Prior` with ``from_options``). A new kind: one line here.
PRIORS = {"pixelcnn": GatedPixelCNN}


def make_prior(kind: str, codebook_size: int, options: Mapping[str, Any],
               top_downsample: Optional[int] = None) -> CodesPrior:
    """A ``kind`` prior over one level's codes, or, with ``top_downsample``, a :class:`TwoLevelPrior` of two
    (the bottom one conditioned on the top codes). ``options``: the kind's architecture keys."""
    if kind not in PRIORS:
        raise ValueError(f"unknown prior kind {kind!r}; known: {', '.join(sorted(PRIORS))}")
    level = PRIORS[kind]
    if top_downsample is None:
        return level.from_options(codebook_size, options)
    return TwoLevelPrior(lambda condition_channels: level.from_options(codebook_size, options, condition_channels),
                         codebook_size, top_downsample)
