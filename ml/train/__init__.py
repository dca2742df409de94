"""Training: plain and neural-regularized classification (one loop, Eq. 7)."""

from ml.train.joint import FeatureSource, TrainConfig, TrainResult, paper_lr, train_model

__all__ = ["FeatureSource", "TrainConfig", "TrainResult", "paper_lr", "train_model"]
