"""Plain cross-entropy classifier training (the unregularized baseline).

The neural similarity regularizer (Eq 7–10) plugs into this loop later; everything
here — seeds, metrics per step, test accuracy per epoch, a checkpoint that embeds its
config — is what every training run records.
"""

from __future__ import annotations

import dataclasses
import io
import math
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from annotated_types import Ge, Gt, Le, Lt

from ml._validate import validate_config
from ml.data import load_dataset
from ml.models import build_backbone
from ml.recorder import Cancelled, Recorder
from ml.runtime import deterministic_mode, environment_info, pick_device


@dataclass(frozen=True, kw_only=True)
class ClassifierConfig:
    """Everything that defines a training run; saved inside its checkpoint."""

    dataset: Literal["digits32"] = "digits32"
    backbone: Literal["small_cnn", "resnet18", "resnet34"] = "small_cnn"
    width: Annotated[int, Ge(4), Le(512)] = 16
    epochs: Annotated[int, Ge(1), Le(1000)] = 3
    batch_size: Annotated[int, Ge(1), Le(4096)] = 64
    lr: Annotated[float, Gt(0), Le(10)] = 0.05
    momentum: Annotated[float, Ge(0), Lt(1)] = 0.9
    weight_decay: Annotated[float, Ge(0), Le(1)] = 5e-4
    seed: Annotated[int, Ge(0)] = 0
    deterministic: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        validate_config(self)


@dataclass(frozen=True)
class TrainResult:
    steps: int
    test_accuracy: float
    test_loss: float
    seconds: float


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int
) -> tuple[float, float]:
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(images), batch):
        logits = model(images[i : i + batch])
        loss_sum += F.cross_entropy(logits, labels[i : i + batch], reduction="sum").item()
        correct += (logits.argmax(1) == labels[i : i + batch]).sum().item()
    model.train()
    return correct / len(images), loss_sum / len(images)


def checkpoint_bytes(model: torch.nn.Module, config: ClassifierConfig, **extra: Any) -> bytes:
    """Serialize weights with the full config, so a checkpoint rebuilds its own model."""
    buf = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"config": dataclasses.asdict(config), "state_dict": state, **extra}, buf)
    return buf.getvalue()


def train_classifier(config: ClassifierConfig, recorder: Recorder) -> TrainResult:
    """Train a classifier with plain cross-entropy, reporting through ``recorder``.

    Per step it logs ``loss``, ``acc`` (minibatch) and ``lr``; per epoch ``test_acc``
    and ``test_loss`` on the held-out split. Ends by saving ``model.pt``.

    Args:
        config: the run's frozen configuration.
        recorder: where metrics, progress and the checkpoint go.

    Returns:
        Final step count, test accuracy/loss and wall time.

    Raises:
        Cancelled: when ``recorder.should_stop()`` turns true.
        FloatingPointError: when the loss becomes non-finite.
    """
    start = time.perf_counter()
    device = pick_device(config.device)
    with deterministic_mode(config.deterministic, config.seed):
        data = load_dataset(config.dataset, seed=config.seed)
        model = build_backbone(config.backbone, num_classes=data.num_classes, width=config.width)
        model = model.to(device)
        opt = torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        x_train, y_train = data.train_images.to(device), data.train_labels.to(device)
        x_test, y_test = data.test_images.to(device), data.test_labels.to(device)
        gen = torch.Generator().manual_seed(config.seed)
        n = len(x_train)
        steps_per_epoch = math.ceil(n / config.batch_size)
        total = steps_per_epoch * config.epochs
        step = 0
        test_acc = test_loss = float("nan")
        for epoch in range(config.epochs):
            order = torch.randperm(n, generator=gen).to(device)
            for i in range(0, n, config.batch_size):
                if recorder.should_stop():
                    raise Cancelled(f"stopped at step {step}")
                idx = order[i : i + config.batch_size]
                logits = model(x_train[idx])  # (B, classes)
                loss = F.cross_entropy(logits, y_train[idx])
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss.item()} at step {step}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                acc = (logits.argmax(1) == y_train[idx]).float().mean().item()
                recorder.log_metrics(
                    {"loss": loss.item(), "acc": acc, "lr": opt.param_groups[0]["lr"]}, step
                )
                step += 1
                recorder.progress(step / total, f"epoch {epoch + 1}/{config.epochs}")
            test_acc, test_loss = evaluate(model, x_test, y_test, 512)
            recorder.log_metrics({"test_acc": test_acc, "test_loss": test_loss}, step - 1)
        recorder.save_artifact(
            "model.pt",
            checkpoint_bytes(model, config, step=step, environment=environment_info(device)),
            "application/octet-stream",
        )
    return TrainResult(step, test_acc, test_loss, time.perf_counter() - start)
