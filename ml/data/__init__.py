"""Datasets as tensors: images float32 in [0, 1], shape (N, 1, H, W)."""

from ml.data.dataset import ImageDataset
from ml.data.digits import load_digits32
from ml.data.registry import DATASETS, load_dataset

__all__ = ["DATASETS", "ImageDataset", "load_dataset", "load_digits32"]
