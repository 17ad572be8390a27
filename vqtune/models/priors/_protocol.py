"""What the rest of vqtune asks of a prior, whatever its architecture.

Two faces of one idea:

- :class:`Prior`: a distribution over one (B, H, W) grid of codes, optionally conditioned on a (B, C_s, H, W)
  map known in full before sampling: its logits, and a draw of a grid of a given shape. A level of a
  hierarchical prior is one (:class:`TwoLevelPrior` takes any per level).
- :class:`CodesPrior`: a distribution over all the code grids of an autoencoder, a tuple of one grid per level
  (top first, as the autoencoder gives them): what stage 2 trains, evaluates, times and samples, knowing only
  that tuple. A :class:`Prior` used alone is one over a 1-tuple (:class:`OneLevel` gives it those methods).

Any ``nn.Module`` with these methods is a prior; a new kind registers its class in ``PRIORS`` (``__init__.py``)
and builds itself with ``from_options``.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Protocol, Sequence, runtime_checkable

import torch
import torch.nn.functional as F


@runtime_checkable
class Prior(Protocol):
    """p(z | s) over (B, H, W) grids of ``codebook_size`` codes; ``condition_channels`` > 0: conditioned on a
    (B, condition_channels, H, W) map ``s`` that calls then require (0: unconditioned, ``s`` refused). ``width``:
    the width of its features (a level conditioned on this one reads embeddings of that width)."""

    codebook_size: int
    condition_channels: int
    width: int

    @classmethod
    def from_options(cls, codebook_size: int, options: Mapping[str, Any], condition_channels: int = 0) -> "Prior":
        """A prior built from a config section's plain options (its architecture's keys)."""

    def __call__(self, codes: torch.Tensor, condition: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, H, W) int64 codes -> (B, K, H, W) logits of p(z_i | z_<i [, s])."""

    def sample(self, shape: tuple[int, int, int], temperature: float = 1.0,
               generator: Optional[torch.Generator] = None, condition: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Draw (B, H, W) code grids (``shape``) at ``temperature`` from ``generator``."""


@runtime_checkable
class CodesPrior(Protocol):
    """p of the tuple of an autoencoder's code grids, one (B, h, w) tensor per level, top first."""

    codebook_size: int

    def grid_logits(self, grids: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """The (B, K, h, w) logits of each grid."""

    def nll_sum(self, grids: Sequence[torch.Tensor]) -> torch.Tensor:
        """-log p(grids) in nats, summed over the batch and every grid."""

    def sample_grids(self, n: int, shapes: Sequence[tuple[int, int]], temperature: float = 1.0,
                     generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, ...]:
        """``n`` draws of the grids, one (n, h, w) tensor per (h, w) in ``shapes``, top first."""


def nll_of(logits: Sequence[torch.Tensor], grids: Sequence[torch.Tensor]) -> torch.Tensor:
    """The summed cross-entropy, in nats, of each grid under its logits (in float32)."""
    total = None
    for level_logits, grid in zip(logits, grids):
        nll = F.cross_entropy(level_logits.float(), grid, reduction="sum")
        total = nll if total is None else total + nll
    return total


class OneLevel:
    """The :class:`CodesPrior` methods of a :class:`Prior` used alone, on the grids of a one-level autoencoder."""

    def grid_logits(self, grids: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        (codes,) = grids
        return (self(codes),)

    def nll_sum(self, grids: Sequence[torch.Tensor]) -> torch.Tensor:
        return nll_of(self.grid_logits(grids), grids)

    @torch.no_grad()
    def sample_grids(self, n: int, shapes: Sequence[tuple[int, int]], temperature: float = 1.0,
                     generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, ...]:
        ((height, width),) = shapes
        return (self.sample((n, height, width), temperature=temperature, generator=generator),)
