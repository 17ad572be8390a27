"""The quantizers that keep their codes alive, each against small cases computed by hand: FSQ's bound, rounding
and index, the rotation trick's value and gradient, factorized lookups and cosine distances."""

import itertools
import math

import pytest
import torch

from vqtune.models import VQVAE, FiniteScalarQuantizer, VectorQuantizer
from vqtune.models.quantizers import rotate_to


def _fsq_bound_by_hand(z: float, levels: int) -> float:
    half = (levels - 1) * (1 + 1e-3) / 2
    offset = 0.5 if levels % 2 == 0 else 0.0
    return math.tanh(z + math.atanh(offset / half)) * half - offset


@pytest.mark.parametrize("levels", [3, 4, 5, 8])
def test_fsq_bounds_rounds_and_scales_each_channel_as_written(levels):
    fsq = FiniteScalarQuantizer([levels], embedding_dim=1)
    values = [-40.0, -1.3, -0.2, 0.0, 0.27, 0.9, 2.5, 40.0]
    z = torch.tensor(values, dtype=torch.float64).view(1, 1, 1, -1)
    bounded = fsq.bound(z).flatten().tolist()
    assert bounded == pytest.approx([_fsq_bound_by_hand(v, levels) for v in values], abs=1e-12)
    out = fsq(z.float())
    integers = [round(b) for b in bounded]
    assert out.quantized.flatten().tolist() == pytest.approx([i / (levels // 2) for i in integers], abs=1e-6)
    # every integer lies in [-(L // 2), L - 1 - L // 2], the ends reached at the ends of the line
    assert (integers[0], integers[-1]) == (-(levels // 2), levels - 1 - levels // 2)
    assert out.indices.flatten().tolist() == [i + levels // 2 for i in integers]
    assert float(out.loss) == 0.0


def test_fsq_index_is_mixed_radix_and_a_bijection():
    levels = [3, 4, 2]
    fsq = FiniteScalarQuantizer(levels, embedding_dim=3)
    assert fsq.codebook_size == 24
    # by hand: integers (1, -2, 0) -> digits (2, 0, 1) -> 2 + 0 * 3 + 1 * 3 * 4 = 14
    assert int(fsq._index(torch.tensor([1.0, -2.0, 0.0]).view(1, 3, 1, 1))) == 14
    grids = [range(-(n // 2), n - n // 2) for n in levels]
    every = torch.tensor(list(itertools.product(*grids)), dtype=torch.float32)  # (24, 3)
    integers = every.t().reshape(1, 3, 1, 24)
    indices = fsq._index(integers)
    assert sorted(indices.flatten().tolist()) == list(range(24))
    assert torch.equal(fsq._integers(indices).float(), integers)
    # lookup of an index gives the code FSQ outputs for it
    codes = fsq.lookup(indices)
    scale = torch.tensor([1.0, 2.0, 1.0]).view(1, 3, 1, 1)
    assert torch.equal(codes, integers / scale)


def test_fsq_gradient_passes_rounding_straight_through():
    fsq = FiniteScalarQuantizer([5], embedding_dim=1)
    z = torch.tensor([[[[0.3, -1.2]]]], requires_grad=True)
    fsq(z).quantized.sum().backward()
    # d/dz tanh(z) * half / (L // 2), the rounding skipped
    half = 4 * (1 + 1e-3) / 2
    expected = [(1 - math.tanh(v) ** 2) * half / 2 for v in (0.3, -1.2)]
    assert z.grad.flatten().tolist() == pytest.approx(expected, rel=1e-5)


def test_fsq_projects_to_its_channels_and_back_and_encodes_what_it_outputs():
    torch.manual_seed(0)
    fsq = FiniteScalarQuantizer([8, 5, 5, 5], embedding_dim=6)
    z = torch.randn(2, 6, 3, 4)
    out = fsq(z)
    assert out.quantized.shape == (2, 6, 3, 4) and fsq.project_in.out_channels == 4
    assert torch.equal(fsq.encode(z), out.indices)
    torch.testing.assert_close(fsq.lookup(out.indices), out.quantized)
    assert int(out.counts.sum()) == 24 and out.counts.shape == (1000,)


def test_rotation_trick_outputs_the_code_and_rotates_the_gradient_by_hand():
    # z = (2, 0), e = (0, 3): u = (1, 0), q = (0, 1), r = (1, 1)/sqrt 2, R = I - 2 r r^T + 2 q u^T = [[0, -1], [1, 0]]
    # (a quarter turn), lambda = 3/2; the gradient of z is lambda R^T g = 1.5 * (g_y, -g_x).
    z = torch.tensor([2.0, 0.0]).view(1, 2, 1, 1).requires_grad_()
    e = torch.tensor([0.0, 3.0]).view(1, 2, 1, 1)
    out = rotate_to(z, e)
    assert torch.equal(out.detach(), e)
    out.backward(torch.tensor([1.0, 2.0]).view(1, 2, 1, 1))
    assert z.grad.flatten().tolist() == pytest.approx([3.0, -1.5])


def test_rotation_trick_gradient_is_lambda_r_transpose_on_random_vectors():
    torch.manual_seed(1)
    z = torch.randn(3, 5, 2, 2, dtype=torch.float64, requires_grad=True)
    e = torch.randn(3, 5, 2, 2, dtype=torch.float64)
    g = torch.randn(3, 5, 2, 2, dtype=torch.float64)
    out = rotate_to(z, e)
    assert torch.equal(out.detach(), e)
    out.backward(g)
    for b, i, j in itertools.product(range(3), range(2), range(2)):
        zv, ev, gv = z.detach()[b, :, i, j], e[b, :, i, j], g[b, :, i, j]
        u, q = zv / zv.norm(), ev / ev.norm()
        r = (u + q) / (u + q).norm()
        rotation = torch.eye(5, dtype=torch.float64) - 2 * torch.outer(r, r) + 2 * torch.outer(q, u)
        torch.testing.assert_close(rotation @ u, q)  # R takes z's direction to e's
        torch.testing.assert_close(z.grad[b, :, i, j], ev.norm() / zv.norm() * rotation.t() @ gv)


def test_rotation_trick_handles_opposite_vectors():
    z = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).requires_grad_()
    e = torch.tensor([-2.0, 0.0]).view(1, 2, 1, 1)
    rotate_to(z, e).sum().backward()
    assert torch.isfinite(z.grad).all()


def test_straight_through_and_rotation_quantize_to_the_same_codes():
    torch.manual_seed(2)
    z = torch.randn(2, 4, 3, 3)
    straight = VectorQuantizer(16, 4, ema=False).eval()
    rotated = VectorQuantizer(16, 4, ema=False, estimator="rotation").eval()
    rotated.load_state_dict(straight.state_dict())
    a, b = straight(z), rotated(z)
    assert torch.equal(a.indices, b.indices)
    torch.testing.assert_close(a.quantized, b.quantized)


def test_factorized_codes_are_looked_up_in_the_projected_space():
    vq = VectorQuantizer(3, embedding_dim=4, codebook_dim=2, ema=False).eval()
    with torch.no_grad():
        vq.project_in.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]).view(2, 4, 1, 1))
        vq.project_in.bias.zero_()
        vq.project_out.weight.copy_(torch.tensor([[1.0, 0], [0, 1.0], [1.0, 1.0], [0, 0]]).view(4, 2, 1, 1))
        vq.project_out.bias.fill_(0.5)
        vq.embedding.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [-1.0, 2.0]]))
    # projected: (0.9, 1.2) -> code 1 (1, 1); the last two channels are dropped by the projection
    z = torch.tensor([0.9, 1.2, 50.0, -50.0]).view(1, 4, 1, 1)
    out = vq(z)
    assert out.indices.item() == 1
    assert out.quantized.flatten().tolist() == pytest.approx([1.5, 1.5, 2.5, 0.5])  # W e + b
    assert float(out.commitment_loss) == pytest.approx(((0.9 - 1) ** 2 + (1.2 - 1) ** 2) / 2)
    torch.testing.assert_close(vq.lookup(out.indices), out.quantized)
    assert vq.encode(z).item() == 1


def test_normalized_codes_are_chosen_by_cosine_and_measured_on_the_sphere():
    codes = torch.tensor([[10.0, 0.0], [0.6, 0.8]])
    z = torch.tensor([1.0, 0.2]).view(1, 2, 1, 1)
    plain = VectorQuantizer(2, 2, ema=False).eval()
    cosine = VectorQuantizer(2, 2, ema=False, normalize=True).eval()
    with torch.no_grad():
        plain.embedding.copy_(codes)
        cosine.embedding.copy_(codes)
    assert plain(z).indices.item() == 1  # Euclidean: (0.6, 0.8) is nearer
    out = cosine(z)
    assert out.indices.item() == 0  # cosine: (1, 0) points the same way
    unit = z.flatten() / z.norm()
    assert float(out.commitment_loss) == pytest.approx(float(((unit - torch.tensor([1.0, 0.0])) ** 2).mean()))
    assert out.quantized.flatten().tolist() == pytest.approx([1.0, 0.0])


def test_normalized_ema_codes_stay_on_the_sphere_after_updates():
    torch.manual_seed(3)
    vq = VectorQuantizer(8, 4, ema=True, normalize=True, dead_code_steps=1).train()
    for _ in range(3):
        vq(torch.randn(4, 4, 3, 3) * 5)
    torch.testing.assert_close(vq.embedding.norm(dim=1), torch.ones(8))


@pytest.mark.parametrize("options", [{"codebook_dim": 3}, {"normalize": True}, {"estimator": "rotation"}])
def test_each_vq_option_trains_a_vqvae_end_to_end(options):
    torch.manual_seed(4)
    model = VQVAE(in_channels=1, hidden=8, residual_hidden=4, residual_blocks=1, downsample=1, embedding_dim=6,
                  codebook_size=8, **options)
    x = torch.rand(4, 1, 8, 8) - 0.5
    out = model(x)
    (torch.nn.functional.mse_loss(out.reconstruction, x) + out.vq.loss).backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    torch.testing.assert_close(model.decode(model.encode(x)), model.eval()(x).reconstruction)


def test_each_kind_of_the_config_is_a_quantizer_built_from_its_section():
    from vqtune.config import QUANTIZER_KINDS, load_train_config
    from vqtune.models import QUANTIZERS, Quantizer
    from vqtune.train import build_model

    assert set(QUANTIZERS) == set(QUANTIZER_KINDS)  # one class per kind, and the same names
    for kind in QUANTIZERS:
        config = load_train_config(None, [f"quantizer.kind={kind}", "model.embedding_dim=4", "model.levels=2"])
        model = build_model(config, in_channels=1)
        for quantizer in model.quantizers:
            assert isinstance(quantizer, QUANTIZERS[kind]) and isinstance(quantizer, Quantizer)
            assert (quantizer.codebook_size, quantizer.embedding_dim) == (config.codebook_size, 4)


def test_the_codebook_rules_are_chosen_once_from_the_options():
    from vqtune.models.quantizers import EMAUpdate, KMeansInit, LossUpdate, Restarts, straight_through

    vq = VectorQuantizer(8, 4)
    assert isinstance(vq.codebook_rule, EMAUpdate) and not isinstance(vq.restarts, Restarts)
    assert not isinstance(vq.initialize, KMeansInit) and vq.estimate is straight_through
    vq = VectorQuantizer(8, 4, ema=False, dead_code_steps=3, kmeans_init=True, estimator="rotation")
    assert isinstance(vq.codebook_rule, LossUpdate) and isinstance(vq.embedding, torch.nn.Parameter)
    assert isinstance(vq.restarts, Restarts) and vq.restarts.steps == 3
    assert isinstance(vq.initialize, KMeansInit) and vq.estimate is rotate_to
