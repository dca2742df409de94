import typing

import torch

from ml.data import DATASETS, load_dataset
from ml.train import TrainConfig


def test_digits32_shapes_range_and_split() -> None:
    d = load_dataset("digits32", seed=0)
    assert d.train_images.shape[1:] == (1, 32, 32) and d.train_images.dtype == torch.float32
    assert len(d.train_images) + len(d.test_images) == 1797
    assert 0.18 < len(d.test_images) / 1797 < 0.22
    for x in (d.train_images, d.test_images):
        assert x.min() >= 0 and x.max() <= 1 and x.max() > 0.9
    # stratified: every class in both splits
    assert set(d.test_labels.tolist()) == set(range(10)) == set(d.train_labels.tolist())


def test_split_is_fixed_so_every_seed_is_tested_on_the_same_images() -> None:
    a, b = (load_dataset("digits32", seed=s) for s in (1, 2))
    assert torch.equal(a.test_images, b.test_images)
    assert torch.equal(a.train_labels, b.train_labels)


def test_registry_matches_config_literal_and_rejects_unknown() -> None:
    hints = typing.get_type_hints(TrainConfig)
    assert set(typing.get_args(hints["dataset"])) == set(DATASETS)
    try:
        load_dataset("cifar-1000", seed=0)
    except ValueError as e:
        assert "digits32" in str(e)
    else:
        raise AssertionError("unknown dataset accepted")
