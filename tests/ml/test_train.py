import io
import typing

import pytest
import torch

from ml.models import BACKBONES, build_backbone
from ml.recorder import Cancelled, MemoryRecorder
from ml.train import TrainConfig, train_model

TINY = dict(backbone="small_cnn", width=4, epochs=1, batch_size=128, lr=0.05, device="cpu")


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbones_forward_backward(name: str) -> None:
    model = build_backbone(name, num_classes=7, width=4)
    for hw in ((32, 32), (36, 64)):  # CIFAR and neural stimulus sizes
        out = model(torch.rand(3, 1, *hw))
        assert out.shape == (3, 7) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_backbone_registry_matches_config_literal() -> None:
    assert set(typing.get_args(typing.get_type_hints(TrainConfig)["backbone"])) == set(
        BACKBONES
    )


def test_training_records_every_step_and_a_loadable_checkpoint() -> None:
    rec = MemoryRecorder()
    result = train_model(TrainConfig(**TINY), rec)
    steps = result.steps
    assert steps == 12  # ceil(1437 / 128)
    assert sorted(rec.metrics["loss"]) == list(range(steps))
    # a None run learns no γ: none is logged (nor kept in the result)
    assert set(rec.metrics) == {"task_loss", "loss", "acc", "lr", "test_acc", "test_loss"}
    assert result.gamma == [] and len(result.layers) == 3
    assert rec.series("loss") == rec.series("task_loss")  # no target: L = L_task
    assert list(rec.metrics["test_acc"]) == [steps - 1]
    assert rec.fractions[-1] == pytest.approx(1.0)
    data, media = rec.artifacts["model.pt"]
    ckpt = torch.load(io.BytesIO(data), weights_only=True)
    assert ckpt["config"]["width"] == 4 and ckpt["step"] == steps
    model = build_backbone("small_cnn", num_classes=10, width=ckpt["config"]["width"])
    model.load_state_dict(ckpt["state_dict"])


def test_training_learns() -> None:
    rec = MemoryRecorder()
    # 12 epochs: at 6 this small network learned or not depending on the thread count
    # (0.36 with one thread, below the bar; seed 1 stayed at chance)
    result = train_model(TrainConfig(backbone="small_cnn", width=16, epochs=12, lr=0.02,
                                     lr_decay=1.0), rec)
    loss = rec.series("loss")
    assert sum(loss[-10:]) / 10 < 0.6 * sum(loss[:10]) / 10
    assert result.test_accuracy > 0.5  # chance is 0.1


def test_same_seed_same_numbers_other_seed_differs() -> None:
    runs = [MemoryRecorder() for _ in range(3)]
    for rec, seed in zip(runs, (3, 3, 4), strict=True):
        train_model(TrainConfig(**TINY, seed=seed), rec)
    # exact on purpose: one path, one machine, one process — determinism, not agreement
    assert runs[0].series("loss") == runs[1].series("loss")
    assert runs[0].series("loss") != runs[2].series("loss")


def test_recorder_can_stop_training() -> None:
    class StopAtThirdCheck(MemoryRecorder):
        checks = 0

        def should_stop(self) -> bool:  # asked once per step
            self.checks += 1
            return self.checks > 3

    rec = StopAtThirdCheck()
    with pytest.raises(Cancelled, match="stopped at step 3"):
        train_model(TrainConfig(**{**TINY, "epochs": 2}), rec)
    assert "model.pt" not in rec.artifacts


@pytest.mark.parametrize(
    ("field", "value"),
    [("epochs", 0), ("lr", -1.0), ("lr", float("nan")), ("dataset", "mnist"), ("width", 2.5)],
)
def test_bad_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_non_finite_loss_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    import ml.train.joint as mod

    real = mod.load_dataset

    def poisoned(name: str, *, seed: int, root=None):  # type: ignore[no-untyped-def]
        d = real(name, seed=seed)
        images = d.train_images.clone()
        images[:, :, 0, 0] = float("nan")
        return dataclasses.replace(d, train_images=images)

    monkeypatch.setattr(mod, "load_dataset", poisoned)
    with pytest.raises(FloatingPointError, match="step 0"):
        train_model(TrainConfig(**TINY), MemoryRecorder())


def test_a_checkpoint_gives_back_its_config_object_with_the_defaults_of_its_time() -> None:
    import io

    import torch

    from ml.models import build_backbone
    from ml.models.checkpoint import checkpoint_bytes
    from ml.train import TrainConfig
    from ml.train.classifier import load_model

    cfg = TrainConfig(backbone="small_cnn", width=4, seed=7)
    raw = checkpoint_bytes(build_backbone("small_cnn", num_classes=10, width=4), cfg)
    model, loaded = load_model(raw)
    assert loaded == cfg and isinstance(loaded, TrainConfig)
    old = torch.load(io.BytesIO(raw), weights_only=True)
    del old["config"]["stimulus_norm"]  # written before the field existed
    old["config"]["a_field_since_dropped"] = 1
    assert load_model(old)[1].stimulus_norm == "shared"
