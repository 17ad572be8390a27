"""The two-level VQ-VAE-2 and its prior: grids of the right sizes, codes that decode to what the model
reconstructs, and a bottom prior that reads the top codes."""

import pytest
import torch
import torch.nn.functional as F

from vqtune.models import VQVAE2, FiniteScalarQuantizer, GatedPixelCNN, TwoLevelPrior, VectorQuantizer


def _model(top_downsample=1, fsq=False):
    torch.manual_seed(0)
    quantizer = (lambda: FiniteScalarQuantizer([4, 3], 6)) if fsq else (lambda: VectorQuantizer(16, 6))
    return VQVAE2(3, 16, 8, 1, downsample=2, top_downsample=top_downsample, embedding_dim=6,
                  quantizer=quantizer(), top_quantizer=quantizer())


@pytest.mark.parametrize("top_downsample, fsq", [(1, False), (2, False), (1, True)])
def test_two_grids_on_a_non_square_image_and_codes_that_decode_to_the_reconstruction(top_downsample, fsq):
    model = _model(top_downsample, fsq)
    x = torch.rand(2, 3, 32, 64) - 0.5
    out = model(x)
    top, bottom = out.levels
    assert out.reconstruction.shape == x.shape
    assert top.indices.shape == (2, 8 >> top_downsample, 16 >> top_downsample) and bottom.indices.shape == (2, 8, 16)
    assert torch.equal(out.vq.indices, bottom.indices)
    torch.testing.assert_close(out.vq.loss, top.loss + bottom.loss)
    (F.mse_loss(out.reconstruction, x) + out.vq.loss).backward()
    assert all(p.grad is not None for p in model.top_encoder.parameters())  # the top level learns
    model.eval()
    codes = model.encode(x)
    assert [torch.equal(a, b.indices) for a, b in zip(codes, model(x).levels)] == [True, True]
    torch.testing.assert_close(model.decode(codes), model(x).reconstruction)


def test_the_bottom_codes_depend_on_the_top_codes():
    model = _model().eval()
    x = torch.rand(4, 3, 32, 32) - 0.5
    features = model.encoder(x)
    top = model.top_quantizer.encode(model.top_encoder(features))
    other = (top + 1) % 16
    bottom_in = [model.bottom_in(torch.cat([features, model.top_decoder(model.top_quantizer.lookup(t))], 1))
                 for t in (top, other)]
    assert not torch.equal(bottom_in[0], bottom_in[1])


def test_the_two_level_prior_is_the_sum_of_both_levels_and_samples_both_grids():
    torch.manual_seed(1)
    prior = TwoLevelPrior(lambda c: GatedPixelCNN(8, channels=8, layers=2, condition_channels=c), 8, top_downsample=1)
    prior.eval()
    top, bottom = torch.randint(0, 8, (3, 2, 3)), torch.randint(0, 8, (3, 4, 6))
    top_logits, bottom_logits = prior(top, bottom)
    expected = F.cross_entropy(top_logits, top, reduction="sum") + F.cross_entropy(bottom_logits, bottom,
                                                                                   reduction="sum")
    torch.testing.assert_close(prior.nll_sum((top, bottom)), expected)
    # the bottom prior reads the top codes: other top codes, other bottom logits
    assert not torch.allclose(prior(top, bottom)[1], prior((top + 1) % 8, bottom)[1])
    generator = torch.Generator().manual_seed(0)
    drawn_top, drawn_bottom = prior.sample_grids(5, ((2, 3), (4, 6)), generator=generator)
    assert drawn_top.shape == (5, 2, 3) and drawn_bottom.shape == (5, 4, 6)
    again = prior.sample_grids(5, ((2, 3), (4, 6)), generator=torch.Generator().manual_seed(0))
    assert torch.equal(again[0], drawn_top) and torch.equal(again[1], drawn_bottom)
    # the fast draw is the reference's: top, then bottom given that top
    reference_top = prior.top.sample((5, 2, 3), generator=torch.Generator().manual_seed(0), method="reference")
    assert torch.equal(reference_top, drawn_top)
