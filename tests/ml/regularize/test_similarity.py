import numpy as np
import pytest
import torch

from ml.models.resnet import resnet18
from ml.neural.estimators import similarity as np_similarity
from ml.regularize import SimilarityHead, all_pairs, centred_cosine, paper_pairs, similarity_loss


def test_eq9_with_the_batch_mean_is_eq2_on_features():
    f = torch.randn(9, 40, dtype=torch.float64)
    s = centred_cosine(f, f.mean(0))
    np.testing.assert_allclose(s.numpy(), np_similarity(f.numpy()), atol=1e-5)


def test_eq8_is_finite_at_plus_minus_one_and_matches_the_formula():
    s_cnn = torch.tensor([1.0, -1.0, 0.3, 0.0], requires_grad=True)
    s_tgt = torch.tensor([1.0, 0.5, -0.2, 0.0])
    loss = similarity_loss(s_cnn, s_tgt)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s_cnn.grad).all()
    inner = (torch.atanh(torch.tensor(0.3)) - torch.atanh(torch.tensor(-0.2))) ** 2
    clamp = 1 - 1e-4
    edge = (torch.atanh(torch.tensor(-clamp)) - torch.atanh(torch.tensor(0.5))) ** 2
    assert loss.item() == pytest.approx(((inner + edge) / 4).item(), rel=1e-4)


def test_gamma_starts_equal_and_sums_to_one():
    head = SimilarityHead(5)
    torch.testing.assert_close(head.gamma, torch.full((5,), 0.2))
    with torch.no_grad():
        head.logits.add_(torch.randn(5))
    assert head.gamma.sum().item() == pytest.approx(1.0) and (head.gamma > 0).all()


def test_eq10_mixes_the_per_tap_similarities_by_gamma():
    head = SimilarityHead(2, centering="batch")
    with torch.no_grad():
        head.logits.copy_(torch.tensor([0.0, 1.0]))
    maps = [torch.randn(6, 2, 3, 3), torch.randn(6, 4, 2, 2)]
    s1, s2 = head.per_tap(maps)
    g = head.gamma
    torch.testing.assert_close(head(maps), g[0] * s1 + g[1] * s2)


def test_gradients_reach_the_backbone_and_the_gamma_logits():
    torch.manual_seed(0)
    model = resnet18(num_classes=10, width=4)
    head = SimilarityHead(len(model.feature_info))
    stimuli = torch.rand(8, 1, 36, 64)
    target = torch.rand(8, 8) * 2 - 1
    s = head(model.forward_intermediates(stimuli, intermediates_only=True))
    i, j = all_pairs(8)
    similarity_loss(s[i, j], target[i, j]).backward()
    assert head.logits.grad is not None and head.logits.grad.abs().sum() > 0
    assert model.stem[0].weight.grad.abs().sum() > 0
    assert model.stages[2][0].conv1.weight.grad.abs().sum() > 0


def test_running_mean_moves_in_training_and_stays_in_eval():
    head = SimilarityHead(1, centering="running", momentum=0.5)
    a, b = torch.zeros(4, 3, 1, 1), torch.ones(4, 3, 1, 1)
    head.per_tap([a])
    head.per_tap([b])
    torch.testing.assert_close(head.running_mean_0, torch.full((3,), 0.5))
    head.eval()
    head.per_tap([b * 10])
    torch.testing.assert_close(head.running_mean_0, torch.full((3,), 0.5))
    assert "running_mean_0" in head.state_dict()  # kept in checkpoints for resume
    fresh = SimilarityHead(1, centering="running")
    fresh.load_state_dict(head.state_dict())
    torch.testing.assert_close(fresh.running_mean_0, head.running_mean_0)


def test_pair_schemes():
    i, j = all_pairs(64)
    assert i.numel() == 64 * 63 // 2 and bool((i < j).all())
    i, j = paper_pairs(64)
    assert i.numel() == 32 and set((i // 2).tolist()) == set(range(32)) and bool((j == i + 1).all())
    with pytest.raises(ValueError, match="pairs"):
        paper_pairs(1)


def test_bad_head_settings_name_the_field():
    with pytest.raises(ValueError, match="taps"):
        SimilarityHead(0)
    with pytest.raises(ValueError, match="centering"):
        SimilarityHead(3, centering="median")  # type: ignore[arg-type]


def test_optimising_the_loss_pulls_s_cnn_toward_the_target():
    torch.manual_seed(1)
    model = resnet18(num_classes=10, width=4)
    head = SimilarityHead(len(model.feature_info), centering="batch")
    stimuli = torch.rand(12, 1, 36, 64)
    latent = torch.randn(12, 3)
    target = centred_cosine(latent, latent.mean(0))  # a valid, structured similarity
    i, j = all_pairs(12)

    def r_now() -> float:
        with torch.no_grad():
            s = head(model.forward_intermediates(stimuli, intermediates_only=True))
        return float(np.corrcoef(s[i, j].numpy(), target[i, j].numpy())[0, 1])

    opt = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=3e-3)
    before, losses = r_now(), []
    for _ in range(40):
        opt.zero_grad()
        s = head(model.forward_intermediates(stimuli, intermediates_only=True))
        loss = similarity_loss(s[i, j], target[i, j])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert r_now() > before + 0.2
