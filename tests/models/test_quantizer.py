import math

import pytest
import torch

from vqtune.models import CodeUsage, VectorQuantizer, perplexity_of


def _quantizer(values, **options) -> VectorQuantizer:
    """A quantizer whose codebook is ``values`` (K, D), EMA statistics consistent with it."""
    codes = torch.tensor(values, dtype=torch.float32)
    vq = VectorQuantizer(codes.shape[0], codes.shape[1], **options)
    with torch.no_grad():
        vq.embedding.copy_(codes)
        if vq.ema:
            vq.ema_cluster_size.fill_(1.0)
            vq.ema_embed_sum.copy_(codes)
    return vq


def _as_latents(values) -> torch.Tensor:
    """(N,) or (N, D) values -> (1, D, 1, N) latents, one latent cell per value."""
    z = torch.tensor(values, dtype=torch.float32)
    z = z.unsqueeze(1) if z.dim() == 1 else z
    return z.t().reshape(1, z.shape[1], 1, z.shape[0])


def test_indices_match_brute_force_nearest_neighbour():
    torch.manual_seed(0)
    vq = VectorQuantizer(64, 8).eval()
    with torch.no_grad():
        vq.embedding.normal_()
    z = torch.randn(3, 8, 5, 7)
    out = vq(z)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 8)
    brute = torch.stack([((row - vq.embedding) ** 2).sum(1).argmin() for row in flat])
    assert torch.equal(out.indices.flatten(), brute)
    assert out.indices.shape == (3, 5, 7)
    assert torch.allclose(out.quantized, vq.embedding[brute].view(3, 5, 7, 8).permute(0, 3, 1, 2), atol=1e-6)


def test_loss_terms_on_a_hand_computed_case():
    # codes 0 and 1; latents 0.2 -> code 0, 0.9 -> code 1: both squared errors average (0.04 + 0.01) / 2.
    z = _as_latents([0.2, 0.9])
    plain = _quantizer([[0.0], [1.0]], beta=0.5, ema=False)(z)
    assert plain.indices.flatten().tolist() == [0, 1]
    assert plain.commitment_loss.item() == pytest.approx(0.025)
    assert plain.codebook_loss.item() == pytest.approx(0.025)
    assert plain.loss.item() == pytest.approx(0.025 + 0.5 * 0.025)  # beta weighs the commitment term only
    ema = _quantizer([[0.0], [1.0]], beta=0.5, ema=True).eval()(z)
    assert ema.loss.item() == pytest.approx(0.5 * 0.025)  # no codebook term under EMA


def test_codebook_gradient_reaches_codes_only_without_ema():
    vq = _quantizer([[0.0], [1.0]], beta=0.25, ema=False)
    vq(_as_latents([0.2, 0.9])).loss.backward()
    # d/de0 of mean((e - z)^2) over 2 cells = 2 (e0 - 0.2) / 2
    assert vq.embedding.grad[:, 0].tolist() == pytest.approx([-0.2, 0.1])


def test_one_ema_step_by_hand():
    vq = _quantizer([[0.0], [1.0]], decay=0.5, eps=1e-5).train()
    vq(_as_latents([0.2, 0.4, 0.9]))
    # n = [2, 1], sums = [0.6, 0.9];  N = .5*[1, 1] + .5*[2, 1];  m = .5*[0, 1] + .5*[0.6, 0.9]
    N = torch.tensor([1.5, 1.0])
    m = torch.tensor([0.3, 0.95])
    assert torch.allclose(vq.ema_cluster_size, N)  # the smoothed counts are never written back
    assert torch.allclose(vq.ema_embed_sum[:, 0], m)
    n = N.sum()
    smoothed = (N + 1e-5) / (n + 2 * 1e-5) * n
    assert torch.allclose(vq.embedding[:, 0], m / smoothed)


def test_decay_is_honoured():
    sizes = {}
    for decay in (0.5, 0.9):
        vq = _quantizer([[0.0], [1.0]], decay=decay).train()
        vq(_as_latents([0.2, 0.4, 0.9]))
        sizes[decay] = vq.ema_cluster_size.tolist()
    assert sizes[0.5] == pytest.approx([0.5 + 0.5 * 2, 0.5 + 0.5 * 1])
    assert sizes[0.9] == pytest.approx([0.9 + 0.1 * 2, 0.9 + 0.1 * 1])


def test_codebook_is_left_alone_in_eval_mode():
    vq = _quantizer([[0.0], [1.0]], dead_code_steps=1).eval()
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    for _ in range(3):
        vq(_as_latents([0.2, 0.4, 0.9]))
    assert all(torch.equal(before[k], v) for k, v in vq.state_dict().items())


def test_straight_through_gradient():
    vq = _quantizer([[0.0], [1.0]], beta=0.25).eval()
    z = _as_latents([0.2, 0.9]).requires_grad_()
    out = vq(z)
    assert out.quantized.flatten().tolist() == pytest.approx([0.0, 1.0])  # forward: the codes
    (grad,) = torch.autograd.grad(out.quantized.sum(), z)
    assert torch.equal(grad, torch.ones_like(z))  # backward: identity, straight through
    (grad,) = torch.autograd.grad(vq(z).loss, z)
    # commitment: beta * mean((z - sg[e])^2) -> 2 * beta * (z - e) / 2
    assert grad.flatten().tolist() == pytest.approx([0.25 * 0.2, 0.25 * -0.1])


@pytest.mark.parametrize("ema", [True, False])
def test_dead_code_restart_revives_unused_codes(ema):
    torch.manual_seed(0)
    far = [[100.0 + i, 100.0] for i in range(6)]
    z = torch.randn(4, 2, 4, 4) * 0.1
    used = {}
    for steps in (0, 3):
        vq = _quantizer([[0.0, 0.0], [0.1, 0.1]] + far, ema=ema, dead_code_steps=steps).train()
        for _ in range(4):
            vq(z)
        usage = CodeUsage(8)
        usage.update(vq.eval()(z).indices)
        used[steps] = int((usage.counts > 0).sum())
        if steps:
            assert vq.embedding[2:].abs().max() < 1.0  # re-seeded from encoder outputs near 0
    assert used[0] <= 2  # without restarts the far codes are never chosen
    assert used[3] > 2


def test_kmeans_init_places_codes_on_the_clusters():
    torch.manual_seed(0)
    centers = torch.tensor([[-3.0, -3.0], [-3.0, 3.0], [3.0, -3.0], [3.0, 3.0]])
    points = centers.repeat(64, 1) + 0.05 * torch.randn(256, 2)
    vq = VectorQuantizer(4, 2, kmeans_init=True).train()
    vq(points.t().reshape(1, 2, 16, 16))
    distances = torch.cdist(centers, vq.embedding)
    assert distances.min(1).values.max() < 0.5
    assert bool(vq.initialized)


def test_perplexity_is_exp_entropy_of_usage():
    counts = torch.tensor([6.0, 3.0, 1.0, 0.0])
    p = counts / counts.sum()
    entropy = -sum(float(q) * math.log(float(q)) for q in p if q > 0)
    assert perplexity_of(counts).item() == pytest.approx(math.exp(entropy), rel=1e-6)
    assert perplexity_of(torch.ones(16)).item() == pytest.approx(16)
    assert perplexity_of(torch.tensor([5.0, 0.0, 0.0])).item() == pytest.approx(1.0)


def test_usage_accumulates_over_batches():
    torch.manual_seed(0)
    batches = [torch.randint(0, 10, (4, 3, 3)) for _ in range(5)]
    usage = CodeUsage(32)
    for batch in batches:
        usage.update(batch)
    whole = torch.bincount(torch.cat([b.flatten() for b in batches]), minlength=32).float()
    assert usage.perplexity() == pytest.approx(perplexity_of(whole).item(), rel=1e-6)
    assert usage.usage_fraction() == pytest.approx(int((whole > 0).sum()) / 32)
    # counts from the quantizer's own result accumulate the same way
    vq = VectorQuantizer(32, 3).eval()
    by_counts, by_indices = CodeUsage(32), CodeUsage(32)
    for z in torch.randn(3, 2, 3, 4, 4):
        out = vq(z)
        by_counts.update(out.counts)
        by_indices.update(out.indices)
    assert torch.equal(by_counts.counts, by_indices.counts)
