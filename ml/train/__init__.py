"""Training jobs."""

from ml.train.classifier import ClassifierConfig, TrainResult, train_classifier

__all__ = ["ClassifierConfig", "TrainResult", "train_classifier"]
