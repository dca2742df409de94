"""One small trained model on the offline digits, shared by the evaluation tests."""

import pytest
import torch

from ml.data import load_dataset
from ml.recorder import MemoryRecorder
from ml.train import TrainConfig, train_model
from ml.train.classifier import load_model


@pytest.fixture(scope="package")
def trained() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    rec = MemoryRecorder()
    train_model(TrainConfig(backbone="small_cnn", width=16, epochs=8, lr=0.02, lr_decay=1.0,
                            device="cpu"), rec)
    model, _ = load_model(rec.artifacts["model.pt"][0])
    data = load_dataset("digits32", seed=0)
    return model, data.test_images, data.test_labels
