"""The cnn-features target from a torchvision VGG19 state dict or a neuroreg checkpoint."""

import io

import numpy as np
import pytest
import torch

from ml.models import build_backbone
from ml.neural.stimuli import natural_patches
from ml.neural.target import SimilarityTarget
from ml.regularize.cnn_features import (
    VGG19,
    cnn_features_target,
    load_feature_network,
    vgg19_layers,
)
from ml.train import TrainConfig
from ml.train.classifier import checkpoint_bytes

# torchvision.models.vgg19().state_dict() layout, written out independently of our module:
# config "E", each conv followed by a ReLU, a max-pool after each block, 3 Linear layers.
_E = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
      512, 512, 512, 512, "M"]


def torchvision_vgg19_state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state, i, c_in = {}, 0, 3
    for v in _E:
        if v == "M":
            i += 1
            continue
        scale = (2 / (9 * c_in)) ** 0.5
        state[f"features.{i}.weight"] = torch.randn(v, c_in, 3, 3, generator=g) * scale
        state[f"features.{i}.bias"] = torch.zeros(v)
        i, c_in = i + 2, v
    for k, (o, n) in {0: (4096, 25088), 3: (4096, 4096), 6: (1000, 4096)}.items():
        state[f"classifier.{k}.weight"] = torch.zeros(o, n)
        state[f"classifier.{k}.bias"] = torch.zeros(o)
    return state


@pytest.fixture(scope="module")
def stimuli() -> SimilarityTarget:
    images = natural_patches(40, seed=2)
    factor = np.eye(40, dtype=np.float32)
    return SimilarityTarget("neural-model", factor, np.arange(40), images)


def test_our_vgg19_has_torchvision_keys_and_layer_names():
    ours = {k: tuple(v.shape) for k, v in VGG19().state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in torchvision_vgg19_state().items()}
    assert ours == theirs
    names = vgg19_layers()
    assert names["conv1_1"] == 0 and names["conv3_1"] == 10 and names["relu3_1"] == 11
    assert names["conv5_4"] == 34 and len(names) == 32


def test_vgg19_conv3_1_target_from_a_state_dict_file(tmp_path, stimuli):
    path = tmp_path / "vgg19.pth"
    state = torchvision_vgg19_state()
    torch.save(state, path)
    extract, info = load_feature_network(path, "conv3_1")
    target = cnn_features_target(extract, stimuli, meta=info)

    # the same S by hand: grey→RGB, ImageNet normalisation, 10 layers of VGG19, Eq. 9
    x = torch.from_numpy(stimuli.images).expand(-1, 3, -1, -1)
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        for idx in range(11):
            key = f"features.{idx}.weight"
            if key in state:
                bias = state[f"features.{idx}.bias"]
                x = torch.nn.functional.conv2d(x, state[key], bias, padding=1)
            elif idx in (4, 9):
                x = torch.nn.functional.max_pool2d(x, 2)
            else:
                x = torch.relu(x)
    f = x.flatten(1).double().numpy()  # (40, 256·9·16): conv3_1 before its ReLU
    f -= f.mean(0)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    assert target.kind == "cnn-features" and target.factor.shape == (40, 40)  # reduced exactly
    np.testing.assert_allclose(target.matrix(), f @ f.T, atol=2e-5)
    np.testing.assert_allclose(np.diag(target.matrix()), 1.0, atol=1e-5)
    assert target.meta["feature_dim"] == 256 * 9 * 16 and target.meta["layer"] == "conv3_1"


def test_neuroreg_checkpoint_and_tap_layer(stimuli):
    model = build_backbone("resnet18", num_classes=10, width=4)
    ckpt = checkpoint_bytes(model, TrainConfig(width=4), step=0)
    extract, info = load_feature_network(ckpt, "2")
    target = cnn_features_target(extract, stimuli, meta=info)
    with torch.no_grad():
        model.eval()
        (m,) = model.forward_intermediates(torch.from_numpy(stimuli.images), [2],
                                           intermediates_only=True)
    f = m.flatten(1).double().numpy()
    f -= f.mean(0)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    np.testing.assert_allclose(target.matrix(), f @ f.T, atol=2e-5)
    assert info["network"] == "neuroreg resnet18"


def test_tap_features_give_every_tap_from_one_pass(stimuli):
    from ml.regularize.cnn_features import tap_features

    model = build_backbone("resnet18", num_classes=10, width=4)
    ckpt = checkpoint_bytes(model, TrainConfig(width=4), step=0)
    idx = np.array([5, 0, 7, 3])
    feats = tap_features(ckpt, [0, 2, 4], stimuli.images, batch=3)(idx)
    for tap, got in zip([0, 2, 4], feats, strict=True):
        extract, _ = load_feature_network(ckpt, str(tap))
        with torch.no_grad():
            want = extract(torch.from_numpy(stimuli.images[idx])).flatten(1).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize(("source", "layer", "match"), [
    ("vgg", "conv9_1", "not a VGG19 layer"),
    ("ckpt", "conv3_1", "tap index"),
    ("ckpt", "7", "taps: 7 is out of range"),
    ("resnet_state", "conv3_1", "not a torchvision VGG19"),
])
def test_bad_networks_and_layers_are_named(source, layer, match):
    model = build_backbone("resnet18", num_classes=10, width=4)
    raw = {"vgg": lambda: _bytes(torchvision_vgg19_state()),
           "ckpt": lambda: checkpoint_bytes(model, TrainConfig(width=4), step=0),
           "resnet_state": lambda: _bytes(model.state_dict())}[source]()
    with pytest.raises(ValueError, match=match):
        load_feature_network(raw, layer)


def _bytes(obj) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _trained_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """BatchNorm statistics as training leaves them (not the fresh 0 and 1)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.2)
            m.num_batches_tracked.fill_(50)


@pytest.mark.parametrize("updated", [False, True])
def test_a_none_networks_target_uses_its_trained_statistics(stimuli, updated):
    """A None model (α = 0, stimulus_norm separate) stores a stimulus pathway it never
    used: statistics as they started, 0 and 1. Its cnn-features target and its stimulus
    network are its own trained network, not one normalised by those; a regularized
    model's updated stimulus statistics are still used."""
    from ml.models.checkpoint import load_network
    from ml.train.pathway import StimulusPathway, stimulus_pathway

    model = build_backbone("small_cnn", num_classes=10, width=4)
    _trained_bn(model)
    fresh = StimulusPathway(model, "separate").state_dict()  # as a None run saves it
    stim_bn = fresh
    if updated:
        other = build_backbone("small_cnn", num_classes=10, width=4)
        _trained_bn(other, seed=1)
        stim_bn = {k: v.clone() for k, v in other.state_dict().items() if k in fresh}
    cfg = TrainConfig(backbone="small_cnn", width=4, stimulus_norm="separate")
    ckpt = checkpoint_bytes(model, cfg, step=0, stimulus_bn=stim_bn)
    x = torch.from_numpy(stimuli.images)
    reference = build_backbone("small_cnn", num_classes=10, width=4)  # what it should be
    reference.load_state_dict({**model.state_dict(), **(stim_bn if updated else {})})
    with torch.no_grad():
        (want,) = reference.eval().forward_intermediates(x, [1], intermediates_only=True)
        net, _ = load_network(ckpt, pathway="stimulus")
        (got,) = net.forward_intermediates(x, [1], intermediates_only=True)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)
    extract, info = load_feature_network(ckpt, "1")
    target = cnn_features_target(extract, stimuli, meta=info)
    f = want.flatten(1).double().numpy()
    f -= f.mean(0)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    np.testing.assert_allclose(target.matrix(), f @ f.T, atol=2e-5)
    # the mechanism part's pathway over the same checkpoint gives the same features
    task = build_backbone("small_cnn", num_classes=10, width=4)
    task.load_state_dict(model.state_dict())
    task.eval()
    pathway = stimulus_pathway(task, "separate", stim_bn)
    with torch.no_grad(), pathway():
        (mech,) = task.forward_intermediates(x, [1], intermediates_only=True)
    np.testing.assert_allclose(mech.numpy(), want.numpy(), atol=1e-5)
