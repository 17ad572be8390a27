"""How the decoder's gradient crosses the quantizer: each estimator maps the encoder output ``z`` and its code
``e`` (both (B, c, H, W), ``e`` without a gradient) to a tensor whose value is ``e`` and whose gradient reaches
``z``."""

from __future__ import annotations

from typing import Callable, Dict

import torch
import torch.nn.functional as F


def straight_through(z: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """z + sg[e - z] (van den Oord et al. 2017): the value of ``e``, the upstream gradient copied to ``z``."""
    return z + (e - z).detach()


def rotate_to(z: torch.Tensor, e: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """The rotation trick (Fifty et al. 2024, arXiv 2410.06424): carry the gradient of ``e`` back to ``z`` through
    the rotation and rescaling that takes ``z`` to ``e``, instead of copying it unchanged.

    Along dim 1 of ``z`` and ``e`` (B, c, H, W): u = z/|z|, q = e/|e|, r = (u + q)/|u + q|,
    R = I - 2 r r^T + 2 q u^T (the rotation taking u to q in their plane) and lambda = |e|/|z|. The result is
    sg[lambda R] z: its value is e (exactly: the float residue is replaced by e itself), and its gradient
    with respect to z is lambda R^T times the upstream gradient. ``e`` must not need a gradient.
    """
    with torch.no_grad():
        z_norm = z.norm(dim=1, keepdim=True).clamp_min(eps)
        e_norm = e.norm(dim=1, keepdim=True)
        u, q = z / z_norm, e / e_norm.clamp_min(eps)
        r = F.normalize(u + q, dim=1, eps=eps)  # u = -q: r = 0, and R u = u + 2q = q all the same
        scale = e_norm / z_norm
    rotated = scale * (z - 2 * r * (r * z).sum(1, keepdim=True) + 2 * q * (u * z).sum(1, keepdim=True))
    return rotated + (e - rotated).detach()


# The ``estimator`` option of :class:`~vqtune.models.VectorQuantizer`, by name.
ESTIMATORS: Dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "straight_through": straight_through,
    "rotation": rotate_to,
}
