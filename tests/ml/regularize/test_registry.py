"""Every registered target, the same way (as timm tests every registered model): it
resolves from its similarity-run source and a model trains toward it."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import numpy as np
import pytest
import torch

from ml.neural.estimators import unit_vectors
from ml.neural.stimuli import natural_patches
from ml.neural.target import SimilarityTarget
from ml.recorder import MemoryRecorder
from ml.regularize.targets import (
    FROM_SIMILARITY_RUN,
    REGISTRY,
    TARGETS,
    Network,
    TargetName,
    resolve_target,
)
from ml.train.joint import TrainConfig, train_model

TINY = dict(backbone="small_cnn", width=8, epochs=1, batch_size=256, lr=0.05,
            stimuli_per_step=24, heldout_fraction=0.25, deterministic=True, device="cpu")


@pytest.fixture(scope="module")
def sources() -> dict[str, SimilarityTarget]:
    """One target per kind a similarity run stores, over the same 60 stimuli."""
    images = natural_patches(60, seed=5)
    rng = np.random.default_rng(0)
    quad = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(images), (2, 2))
    f = quad.flatten(1).numpy()
    return {kind: SimilarityTarget(kind, unit_vectors(f + rng.normal(0, 0.5, f.shape)),
                                   np.arange(60), images)
            for kind in FROM_SIMILARITY_RUN}


@pytest.fixture(scope="module")
def network() -> Network:
    """A neuroreg model.pt (a tiny None run) whose second tap cnn-features reads."""
    rec = MemoryRecorder()
    train_model(TrainConfig(target="none", **TINY), rec)
    return Network(rec.artifacts["model.pt"][0], "1", {"stimuli_run": 1})


def test_the_config_type_names_the_registry() -> None:
    assert typing.get_args(TargetName) == TARGETS == tuple(REGISTRY)
    assert TrainConfig.__dataclass_fields__["target"].type in ("TargetName", TargetName)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_target_resolves_from_its_source_and_trains(
    name: str, sources: dict[str, SimilarityTarget], network: Network
) -> None:
    spec = REGISTRY[name]
    source = None if spec.source is None else sources[spec.source]
    target = resolve_target(name, source, seed=3,
                            network=network if spec.needs_network else None)
    if spec.source is None:
        assert target is None
    else:
        assert target is not None and len(target) == len(source)
        np.testing.assert_array_equal(target.image_ids, source.image_ids)
        assert target.kind == (name if spec.source != name else source.kind)
        assert resolve_target(name, target, seed=3) is target or spec.source == name
    res = train_model(TrainConfig(target=name, alpha=2.0, **TINY), MemoryRecorder(), target)
    assert (res.r_similarity is None) == (name == "none")
    assert np.isfinite(res.test_accuracy)


def test_a_target_that_needs_a_network_says_so(sources: dict[str, SimilarityTarget]) -> None:
    (name,) = [n for n, s in REGISTRY.items() if s.needs_network]
    with pytest.raises(ValueError, match="features: .* needs a network"):
        resolve_target(name, sources["neural-model"], seed=0)
    with pytest.raises(ValueError, match="needs a target"):
        resolve_target("random", None, seed=0)


def test_every_target_has_its_own_colour_on_the_dashboard() -> None:
    """frontend/static/palette.js colours each registered target, never two alike, and
    never with a colour it hands out to conditions the registry does not name."""
    js = (Path(__file__).parents[3] / "frontend/static/palette.js").read_text()
    block = re.search(r"CONDITION_COLOURS = Object.freeze\(\{(.*?)\}\)", js, re.S)
    assert block is not None
    colours = dict(re.findall(r'"?([\w-]+)"?: "(#[0-9a-f]{6})"', block.group(1)))
    assert set(colours) == set(REGISTRY)
    assert len(set(colours.values())) == len(colours)
    spare = re.search(r"const SPARE = \[(.*?)\]", js, re.S)
    assert spare is not None and not set(re.findall(r"#[0-9a-f]{6}", spare.group(1))) & set(
        colours.values())
