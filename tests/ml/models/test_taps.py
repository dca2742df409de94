"""Every registered backbone exposes the same taps (timm's interface)."""

import pytest
import torch
from torch import nn

from ml.models import BACKBONES, build_backbone
from ml.models.resnet import resnet18, resnet34


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_last_tap_is_the_plain_forward_features(name: str) -> None:
    torch.manual_seed(0)
    model = build_backbone(name, num_classes=5, width=4).eval()
    x = torch.rand(2, 1, 32, 32)
    final, maps = model.forward_intermediates(x)
    assert len(maps) == len(model.feature_info)
    torch.testing.assert_close(maps[-1], model.forward_features(x))
    torch.testing.assert_close(final, maps[-1])
    torch.testing.assert_close(model.forward_head(final), model(x))
    for info, m in zip(model.feature_info, maps, strict=True):
        assert m.shape[1] == info["num_chs"]
        assert m.shape[-1] == 32 // info["reduction"]
        assert torch.isfinite(m).all()


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_taps_select_reorder_and_stop_early(name: str) -> None:
    model = build_backbone(name, num_classes=5, width=4).eval()
    x = torch.rand(2, 1, 36, 64)  # neural stimuli pass through the same weights
    _, every = model.forward_intermediates(x)
    picked = model.forward_intermediates(x, [-1, 0], intermediates_only=True)
    torch.testing.assert_close(picked[0], every[-1])
    torch.testing.assert_close(picked[1], every[0])
    early = model.forward_intermediates(x, [1], intermediates_only=True, stop_early=True)
    torch.testing.assert_close(early[0], every[1])
    with pytest.raises(ValueError, match="taps: 9 is out of range"):
        model.forward_intermediates(x, [9])


def _counted_convs(model: nn.Module) -> int:
    return sum(1 for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))


def test_resnet18_taps_are_the_papers_layers_1_5_9_13_17() -> None:
    model = resnet18(num_classes=10, width=8)
    assert [f["layer"] for f in model.feature_info] == [1, 5, 9, 13, 17]
    assert _counted_convs(model) == 17
    assert [f["num_chs"] for f in model.feature_info] == [8, 8, 16, 32, 64]
    assert [f["reduction"] for f in model.feature_info] == [1, 1, 2, 4, 8]


def test_resnet34_taps_the_stem_and_each_stage() -> None:
    model = resnet34(num_classes=10, width=8)
    assert [f["layer"] for f in model.feature_info] == [1, 7, 15, 27, 33]
    assert _counted_convs(model) == 33
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())  # CIFAR stem
    assert model.stem[0].kernel_size == (3, 3) and model.stem[0].in_channels == 1


def test_gradients_reach_every_tap() -> None:
    model = resnet18(num_classes=3, width=4)
    _, maps = model.forward_intermediates(torch.rand(4, 1, 32, 32))
    sum(m.pow(2).mean() for m in maps).backward()
    assert model.stem[0].weight.grad is not None
    assert model.stages[3][1].conv2.weight.grad.abs().sum() > 0
