"""Where a dataset lives during training: on the GPU as uint8 when it fits, else in pinned host memory.

On the GPU a batch is an index into a resident tensor (no copy per step). A dataset too large for the GPU's free
memory stays in page-locked host memory instead, and each batch is copied over as it is taken.
"""

from __future__ import annotations

import logging
from typing import Optional

import torch

log = logging.getLogger("vqtune.data")

# The dataset may take this share of the GPU's free memory; the rest is for the model, its optimizer state and
# the activations of a batch.
DATASET_SHARE = 0.5
GIB = 2**30


def fits_on_device(dataset_bytes: int, free_bytes: int) -> bool:
    """Whether a dataset of ``dataset_bytes`` may live on a GPU with ``free_bytes`` free."""
    return dataset_bytes <= DATASET_SHARE * free_bytes


def place(tensors: list[torch.Tensor], device: torch.device,
          free_bytes: Optional[int] = None) -> list[torch.Tensor]:
    """``tensors`` on ``device`` when they fit (``free_bytes``: the GPU's free memory, read when not given),
    else pinned in host memory, with a one-line notice. The CPU takes them as they are."""
    if device.type != "cuda":
        return tensors
    total = sum(t.numel() * t.element_size() for t in tensors)
    if free_bytes is None:
        free_bytes = torch.cuda.mem_get_info(device)[0]
    if fits_on_device(total, free_bytes):
        return [t.to(device) for t in tensors]
    log.warning("the dataset (%.1f GiB) does not fit in half of the GPU's free %.1f GiB: it stays in pinned host "
                "memory and each batch is copied to the GPU", total / GIB, free_bytes / GIB)
    return [t.pin_memory() for t in tensors]
