import pytest
import torch

from ml.evaluate.noise import noise_curve, noise_draws


def test_same_seed_same_noisy_images_for_every_model(trained):
    model, x, y = trained
    a = noise_curve(model, x, y, sigmas=(0.0, 0.1, 0.3, 0.6), seed=3)
    b = noise_curve(model, x, y, sigmas=(0.0, 0.1, 0.3, 0.6), seed=3)
    assert a == b  # exact on purpose: the same path twice on one machine
    other = noise_curve(model, x, y, sigmas=(0.0, 0.1, 0.3, 0.6), seed=4)
    # exact on purpose: at σ = 0 every seed feeds the very same images (x + 0·z = x)
    assert other.accuracy[0] == a.accuracy[0] and other.accuracy[1:] != a.accuracy[1:]
    # σ = 0 is the clean accuracy, up to samples whose two top logits tie to float32
    # rounding: another batching may run other kernels and flip their argmax
    with torch.no_grad():
        logits = model(x)
    top = logits.topk(2, dim=1).values
    near_ties = int((top[:, 0] - top[:, 1] < 1e-4 * (1 + top[:, 0].abs())).sum())
    clean = (logits.argmax(1) == y).double().mean().item()
    assert abs(a.accuracy[0] - clean) <= near_ties / len(x) + 1e-12
    assert a.accuracy[-1] < a.accuracy[1] < a.accuracy[0]  # noise hurts
    assert a.accuracy[-1] < 0.3  # near chance (0.1) at σ = 0.6


def test_noise_is_added_then_clipped_with_one_draw_per_image():
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen.append(x.clone())
            return torch.zeros(len(x), 10)

    x = torch.full((4, 1, 8, 8), 0.5)
    noise_curve(Spy(), x, torch.zeros(4, dtype=torch.long), sigmas=(0.0, 0.2, 5.0), seed=1)
    z = noise_draws(x.shape, 1)
    assert torch.equal(seen[0], x)  # exact on purpose: σ = 0 adds exactly 0
    assert torch.allclose(seen[1], (0.5 + 0.2 * z).clamp(0, 1))
    assert seen[2].min() == 0.0 and seen[2].max() == 1.0  # clipped to the bounds


@pytest.mark.parametrize(("images", "sigmas", "match"), [
    (torch.rand(0, 1, 8, 8), (0.1,), "empty"),
    (torch.rand(3, 1, 8, 8) * 2, (0.1,), "outside the model bounds"),
    (torch.rand(3, 1, 8, 8), (-0.1,), "noise_sigmas"),
])
def test_bad_inputs_are_named(images, sigmas, match):
    with pytest.raises(ValueError, match=match):
        noise_curve(torch.nn.Identity(), images, torch.zeros(len(images), dtype=torch.long),
                    sigmas=sigmas)
