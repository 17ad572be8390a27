"""The perplexity rule (the ``perplexity:`` section of a search): a trial whose codebook collapsed is pruned,
whatever the study's pruner says (``pruned_by = perplexity``)."""

from __future__ import annotations

from typing import Mapping, Sequence

from vqtune.config import PerplexityRule, SearchSpace, TrainConfig


def codebook_collapsed(rule: PerplexityRule, epoch: int, last_epoch: int, metrics: Mapping[str, float],
                       codebook_size: int) -> bool:
    """The perplexity rule: at a stage-1 epoch after ``rule.warmup_epochs`` and before the trial's last
    (``last_epoch``: a trial that trained every epoch is finished, never pruned), the validation perplexity
    divided by the codebook size fell below ``rule.floor``."""
    if rule.floor <= 0 or epoch <= rule.warmup_epochs or epoch >= last_epoch or "val_perplexity" not in metrics:
        return False
    return metrics["val_perplexity"] / codebook_size < rule.floor


def perplexity_warnings(space: SearchSpace, configs: Sequence[TrainConfig]) -> list[str]:
    """The rule is on, the trials train a VQ-VAE, and none of ``configs`` (the space's corner configurations)
    has a stage-1 epoch after the warm-up and before its last, where :func:`codebook_collapsed` could act."""
    rule = space.perplexity
    trained = [config for config in configs if "vqvae" in config.stages]
    if rule.floor <= 0 or not trained:
        return []
    latest = max(min(config.optim.epochs, config.total_epochs - 1) for config in trained)
    if rule.warmup_epochs + 1 <= latest:
        return []
    epochs = max(config.optim.epochs for config in trained)
    return [f"perplexity rule cannot prune: warmup_epochs {rule.warmup_epochs} leaves no stage-1 epoch before the "
            f"last ({epochs}); lower perplexity.warmup_epochs or train more epochs (now {epochs}), or set "
            "perplexity.floor: 0 to turn it off"]
