"""Packed training: K runs in one batched computation train the weights the K runs
trained apart do (to float tolerance), each with its own metrics and checkpoints."""

from __future__ import annotations

import copy
import dataclasses
import io
from typing import Any

import numpy as np
import pytest
import torch

from ml.models import build_backbone
from ml.models.packed import PackedBackbone
from ml.recorder import Cancelled, MemoryRecorder
from ml.train.joint import TrainConfig, train_model
from ml.train.pack import pack_key, train_pack
from tests.floats import assert_within, two_paths
from tests.ml.test_joint import TINY, HandBack
from tests.ml.test_joint import target as target  # noqa: F401 (the fixture)

ONE = {**TINY, "epochs": 1}


def _weights(rec: MemoryRecorder, name: str = "model.pt") -> dict[str, torch.Tensor]:
    return torch.load(io.BytesIO(rec.artifacts[name][0]), weights_only=True)["state_dict"]


def _close(a: MemoryRecorder, b: MemoryRecorder, atol: float = 1e-3) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k].float(), wb[k].float(), atol=atol, rtol=1e-3), k
    assert set(a.metrics) == set(b.metrics)
    for key in a.metrics:
        assert sorted(a.metrics[key]) == sorted(b.metrics[key]), key  # every step, once
        assert np.allclose(a.series(key), b.series(key), atol=1e-3), key


def _roundings(model: torch.nn.Module, x: torch.Tensor) -> int:
    """The roundings a forward of ``model`` on ``x`` makes along its computation (an upper
    count of the longest chain): each convolution's and linear layer's fan-in, each
    BatchNorm's reduction over the batch and positions, and the normalization after it."""
    n = 0

    def count(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], _: Any) -> None:
        nonlocal n
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            n += module.in_channels // module.groups * kh * kw
        elif isinstance(module, torch.nn.Linear):
            n += module.in_features
        elif isinstance(module, torch.nn.BatchNorm2d):
            b, _c, h, w = inputs[0].shape
            n += b * h * w + 4

    hooks = [m.register_forward_hook(count) for m in model.modules()]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return n


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", ["small_cnn", "resnet18"])
def test_a_packed_network_is_its_members_side_by_side(name: str, dtype: torch.dtype) -> None:
    """Within the rounding of a forward (tests/floats.py; magnitudes: the largest of the
    compared values, the scale BatchNorm keeps every layer's activations at): in float64 the
    pack is shown to compute its members' function, in float32 to lose nothing more."""
    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        members.append(build_backbone(name, num_classes=10, width=4))
    n = _roundings(copy.deepcopy(members[0]), torch.randn(5, 1, 32, 32))
    pack = PackedBackbone(members).to(dtype)
    members = [m.to(dtype) for m in members]

    def assert_same(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
        scale = float(want.detach().abs().max()) if want.numel() else 0.0
        assert_within(got, want, two_paths(n, scale, dtype), what)

    xs = [torch.randn(5, 1, 32, 32, dtype=dtype) for _ in members]
    out = pack(PackedBackbone.inputs(xs))
    assert out.shape == (5, 3, 10)
    maps = pack.split(pack.forward_intermediates(
        PackedBackbone.inputs(xs), [0, 1], intermediates_only=True)[1])
    for k, (m, x) in enumerate(zip(members, xs, strict=True)):
        assert_same(out[:, k], m(x), "logits")  # train mode: batch statistics
        assert_same(maps[k], m.forward_intermediates(x, [1], intermediates_only=True)[0],
                    "tap 1")
        state = pack.member_state(k)
        for key, v in m.state_dict().items():  # running statistics too
            assert state[key].shape == v.shape, key
            if v.is_floating_point():
                assert_same(state[key], v, key)
            else:
                assert torch.equal(state[key], v), key  # num_batches_tracked
    other = PackedBackbone([build_backbone(name, num_classes=10, width=4) for _ in range(3)])
    other = other.to(dtype)
    other.load_members([pack.member_state(k) for k in range(3)])
    for n, v in pack.state_dict().items():  # exact on purpose: copied, not computed
        assert torch.equal(other.state_dict()[n], v), n
    with pytest.raises(ValueError, match="architecture"):
        PackedBackbone([members[0], build_backbone(name, num_classes=10, width=8)])


def test_a_pack_trains_the_weights_its_runs_train_apart(target: Any) -> None:  # noqa: F811
    configs = [TrainConfig(target="neural-model", alpha=a, seed=s, **ONE)
               for s, a in ((0, 2.0), (1, 0.5), (2, 0.0))]
    apart = []
    for c in configs:
        rec = MemoryRecorder()
        apart.append((rec, train_model(c, rec, target)))
    together = [MemoryRecorder() for _ in configs]
    results = train_pack(configs, together, [target] * 3)
    # the task batch's forward, then cross-entropy's log-sum-exp over 10 classes and its mean
    # over the batch; α·sim's stimulus pathway (24 stimuli) counts fewer roundings, and the
    # loss, a sum of positive parts, is their magnitude
    batch = ONE["batch_size"]
    n = _roundings(build_backbone(ONE["backbone"], num_classes=10, width=ONE["width"]),
                   torch.randn(batch, 1, 32, 32)) + 10 + batch
    for (rec, res), packed, out in zip(apart, together, results, strict=True):
        assert not isinstance(out, BaseException)
        _close(rec, packed)
        # the first step: the same batch, weights and target, through the pack's forward
        # or the member's (see the test above; a mixed-up member would be O(α·sim) away)
        first = rec.metrics["loss"][0]
        assert_within(packed.metrics["loss"][0], first, two_paths(n, abs(first)))
        assert out.steps == res.steps and out.layers == res.layers
        assert out.r_similarity == pytest.approx(res.r_similarity, abs=1e-3)
        assert out.gamma == pytest.approx(res.gamma, abs=1e-3)
        assert out.test_accuracy == pytest.approx(res.test_accuracy, abs=0.02)
    # each member's own γ: the α = 0 run learns none, as apart
    assert "gamma/0" in together[0].metrics and "gamma/0" not in together[2].metrics


def test_pack_members_differ_only_in_seed_target_and_alpha() -> None:
    base = TrainConfig(**ONE)
    assert pack_key(base) == pack_key(dataclasses.replace(base, seed=4, alpha=3.0))
    assert pack_key(base) != pack_key(dataclasses.replace(base, lr=0.01))
    assert pack_key(base) != pack_key(dataclasses.replace(base, target="random"))  # stimuli
    assert pack_key(dataclasses.replace(base, precision="fp16")) is None
    assert pack_key(dataclasses.replace(base, sim_every=2)) is None
    assert pack_key(dataclasses.replace(base, gamma_prune=0.2)) is None
    with pytest.raises(ValueError, match="differ only in"):
        train_pack([base, dataclasses.replace(base, width=4)],
                   [MemoryRecorder(), MemoryRecorder()])


def test_a_cancelled_member_leaves_the_pack_and_the_others_go_on(target: Any) -> None:  # noqa: F811
    configs = [TrainConfig(target="neural-model", seed=s, **ONE) for s in range(2)]
    alone = MemoryRecorder()
    train_model(configs[1], alone, target)
    stopped = HandBack(2)
    stopped.stop_resumes = lambda: False  # type: ignore[method-assign]  # a cancel
    going = MemoryRecorder()
    out = train_pack(configs, [stopped, going], [target] * 2)
    assert isinstance(out[0], Cancelled) and "model.pt" not in stopped.artifacts
    assert not isinstance(out[1], BaseException)
    assert sorted(stopped.metrics["loss"]) == [0, 1]
    _close(alone, going)


def test_a_handed_back_pack_checkpoints_each_member_and_resumes_packed_or_apart(
        target: Any) -> None:  # noqa: F811
    configs = [TrainConfig(target="neural-model", alpha=2.0, seed=s, **{**TINY, "epochs": 2})
               for s in range(2)]
    whole = [MemoryRecorder() for _ in configs]
    train_pack(configs, whole, [target] * 2)
    steps = len(whole[0].metrics["loss"])
    stop = steps // 2 + 2  # mid-epoch 2
    recs = [HandBack(stop), HandBack(10**6)]
    out = train_pack(configs, recs, [target] * 2)
    assert all(isinstance(o, Cancelled) for o in out)
    for r in recs:
        ckpt = torch.load(io.BytesIO(r.artifacts["checkpoint.pt"][0]), weights_only=True)
        assert (ckpt["epoch"], ckpt["step"]) == (1, stop)
        r.stop_at = None
    # member 0 resumes packed with member 1, or alone: the same weights either way
    solo = MemoryRecorder()
    solo.artifacts = dict(recs[0].artifacts)
    solo.metrics = {k: dict(v) for k, v in recs[0].metrics.items()}
    alone = train_model(configs[0], solo, target)
    again = train_pack(configs, recs, [target] * 2)
    assert [o.resumed_from_step for o in again] == [stop, stop]  # type: ignore[union-attr]
    assert alone.resumed_from_step == stop
    for r, w in zip(recs, whole, strict=True):
        _close(w, r)
    _close(recs[0], solo)
