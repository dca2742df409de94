"""The percept part's pure functions (issue 38, item 4): the permuted control keeps the
perturbation's norms, the embedding in the predictor's frame is linear, a readout blind to
the perturbed pixels sees no distance, the unit by hand, the bootstrap's interval."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from ml.evaluate.percept import (
    FRAME,
    control,
    describe,
    distance_unit,
    distances,
    embed,
    luminance,
    median_ci,
    pairwise_median,
    percept,
    permuted,
    placement,
    specificity,
    summarize,
)


def _norms(d: np.ndarray) -> np.ndarray:
    flat = d.reshape(len(d), -1).astype(np.float64)
    return np.stack([(flat != 0).sum(1), np.abs(flat).sum(1), np.linalg.norm(flat, axis=1),
                     np.abs(flat).max(1)], 1)


def test_the_permuted_control_keeps_l0_l1_l2_and_linf_before_clipping() -> None:
    rng = np.random.default_rng(0)
    delta = rng.normal(size=(6, 3, 8, 8)).astype(np.float32)
    delta[:, :, :4] = 0  # sparse, as an L0/L1 perturbation
    out = permuted(delta, np.random.default_rng(1))
    assert out.shape == delta.shape
    np.testing.assert_allclose(_norms(out), _norms(delta), rtol=1e-6)
    assert not np.array_equal(out, delta)  # moved
    for a, b in zip(out, delta, strict=True):  # the same values, elsewhere
        np.testing.assert_array_equal(np.sort(a.ravel()), np.sort(b.ravel()))
    # the seed decides the permutation
    np.testing.assert_array_equal(out, permuted(delta, np.random.default_rng(1)))


def test_the_control_images_are_clipped_and_the_ratio_says_by_how_much() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 0.8, (5, 1, 6, 6)).astype(np.float32)
    small = x + rng.choice([-0.05, 0.05], size=x.shape).astype(np.float32)
    x_rand, ratio = control(x, small, np.random.default_rng(3))
    np.testing.assert_allclose(ratio, 1.0, rtol=1e-5)  # inside [0, 1]: no clipping
    big = np.clip(x + 0.9, 0, 1)  # pushed to the edge: a permutation leaves the box
    big[:, :, :3] = x[:, :, :3]
    x_rand, ratio = control(x, big, np.random.default_rng(3))
    assert x_rand.min() >= 0 and x_rand.max() <= 1
    assert np.all(ratio < 1) and np.all(ratio > 0)
    real = np.linalg.norm((x_rand - x).reshape(5, -1), axis=1)
    np.testing.assert_allclose(ratio, real / np.linalg.norm((big - x).reshape(5, -1), axis=1),
                               rtol=1e-5)


@pytest.mark.parametrize("shape", [(1, 32, 32), (3, 32, 32), (1, 20, 50), (3, 36, 64)])
def test_the_embedding_is_linear_and_keeps_the_fill_outside_the_image(shape) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (4, *shape)).astype(np.float32)
    delta = rng.normal(0, 0.1, x.shape).astype(np.float32)
    fill = luminance(x).reshape(4, -1).mean(1)
    framed = embed(x, fill)
    assert framed.shape == (4, 1, *FRAME) and framed.dtype == np.float32
    assert framed.min() >= 0 and framed.max() <= 1
    np.testing.assert_allclose(embed(x + delta, fill) - framed, embed(delta, 0.0), atol=1e-6)
    top, left, h, w = placement(shape[1:])
    assert h <= FRAME[0] and w <= FRAME[1] and (h == FRAME[0] or w == FRAME[1])
    outside = np.ones(FRAME, bool)
    outside[top:top + h, left:left + w] = False
    if outside.any():
        np.testing.assert_allclose(framed[:, 0][:, outside],
                                   np.broadcast_to(fill[:, None], (4, outside.sum())), atol=1e-7)
    assert "canvas" in describe(shape[1:], shape[0])


def test_the_embedding_is_luma_resized_bilinearly_and_centred() -> None:
    x = np.random.default_rng(1).uniform(0, 1, (2, 3, 32, 32)).astype(np.float32)
    lum = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    np.testing.assert_allclose(luminance(x), lum, atol=1e-6)
    ref = torch.nn.functional.interpolate(torch.from_numpy(lum)[:, None], size=(36, 36),
                                          mode="bilinear", align_corners=False).numpy()
    framed = embed(x, 0.5)
    assert placement((32, 32)) == (0, 14, 36, 36)
    np.testing.assert_allclose(framed[:, :, :, 14:50], ref, atol=1e-6)
    assert np.all(framed[:, :, :, :14] == 0.5) and np.all(framed[:, :, :, 50:] == 0.5)
    with pytest.raises(ValueError, match="1 or 3"):
        luminance(np.zeros((1, 2, 4, 4)))


def _blind(images: np.ndarray, fill: np.ndarray) -> dict[str, np.ndarray]:
    """Reads only the left half of the image (and the fill): blind to the right half."""
    return {"left": images[:, :, :, :4].reshape(len(images), -1),
            "all": images.reshape(len(images), -1)}


def test_a_readout_blind_to_the_perturbed_pixels_is_not_moved() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (7, 1, 8, 8)).astype(np.float32)
    adv = x.copy()
    adv[:, :, :, 4:] = rng.uniform(0, 1, (7, 1, 8, 4))  # only the right half changes
    unit = distance_unit(_blind, x)
    assert unit["left"] > 0 and unit["all"] > 0
    d = distances(_blind, x, {"adv": adv}, unit, batch=3)
    np.testing.assert_array_equal(d["adv"]["left"], 0.0)
    assert np.all(d["adv"]["all"] > 0)
    # D is the raw distance over the unit
    raw = np.linalg.norm((adv - x).reshape(7, -1), axis=1)
    np.testing.assert_allclose(d["adv"]["all"], raw / unit["all"], rtol=1e-6)


def test_the_unit_is_the_median_distance_between_two_clean_images_by_hand() -> None:
    # three points on a line and one off it: pairs' distances 1, 3, 5, 2, √20, 4
    r = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [3.0, 4.0]])
    pairs = [np.linalg.norm(a - b) for a, b in itertools.combinations(r, 2)]
    assert sorted(pairs) == pytest.approx([1, 2, 3, 4, np.sqrt(20), 5])
    assert pairwise_median(r) == pytest.approx(np.median(pairs)) == pytest.approx(3.5)
    # a readout of weighted responses a ⊙ r: the weights scale each coordinate
    a = np.array([2.0, 0.0])
    assert pairwise_median(r * a) == pytest.approx(4.0)  # 2, 6, 6, 4, 4, 0
    assert np.isnan(pairwise_median(r[:1]))


def test_the_bootstrap_interval_contains_the_median() -> None:
    rng = np.random.default_rng(0)
    values = rng.lognormal(size=40)
    values[3] = np.nan  # not counted
    out = median_ci(values, replicates=300, seed=1)
    assert out["n"] == 39 and out["median"] == pytest.approx(np.nanmedian(values))
    assert out["ci_low"] <= out["median"] <= out["ci_high"] and out["ci_low"] < out["ci_high"]
    assert median_ci(values, replicates=300, seed=1) == out  # seeded
    none = median_ci(np.full(3, np.nan), replicates=10, seed=0)
    assert none == {"median": None, "ci_low": None, "ci_high": None, "n": 0}
    s = summarize(values, values / 2, replicates=200, seed=0)
    assert s["ratio"]["median"] == pytest.approx(2.0) and s["n"] == 39
    for key in ("adv", "rand", "ratio"):
        assert s[key]["ci_low"] <= s[key]["median"] <= s[key]["ci_high"]


def test_specificity_is_the_models_ratio_over_v1s() -> None:
    out = specificity(np.array([4.0, 1.0, 1.0]), np.array([1.0, 1.0, 0.0]),
                      np.array([2.0, 1.0, 1.0]), np.array([2.0, 2.0, 1.0]))
    np.testing.assert_allclose(out[:2], [4.0, 2.0])
    assert np.isnan(out[2])  # the model's control did not move it: undefined


def test_percept_summarizes_each_readout_per_norm_with_the_headline() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 0.9, (12, 1, 8, 8)).astype(np.float32)
    adv = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1).astype(np.float32)
    w = rng.normal(0, 0.2, (64, 3))

    def readout(images: np.ndarray, fill: np.ndarray) -> dict[str, np.ndarray]:
        flat = images.reshape(len(images), -1)
        return {"v1/a": flat[:, :10], "v1/b": flat[:, 10:] * 2, "layer1": flat,
                "layer3": np.tanh(flat @ w), "logits": flat[:, :2]}

    sel = np.ones(12, bool)
    sel[[0, 5]] = False
    out, detail = percept(readout, x, {"linf": adv, "l2": adv}, {"linf": sel, "l2": sel},
                          scans=["a", "b"], layers=["layer1", "layer3"], seed=0,
                          replicates=50, boot_seed=0)
    assert out["headline_norm"] == "l2" and set(out["norms"]) == {"linf", "l2"}
    row = out["norms"]["l2"]
    assert row["n"] == 10 and [r["name"] for r in row["readouts"]] == [
        "v1", "v1/a", "v1/b", "layer1", "layer3", "logits"]
    assert row["specificity"]["layer"] == "layer3"
    assert 0 < row["clip_ratio"] <= 1 + 1e-6
    v1 = np.mean([detail["l2"]["adv"]["v1/a"], detail["l2"]["adv"]["v1/b"]], axis=0)
    np.testing.assert_allclose(detail["l2"]["adv"]["v1"], v1)
    assert out["headline"]["v1_adv_l2"] == pytest.approx(np.median(v1))
    assert set(out["headline"]) == {"v1_adv_l2", "v1_rand_l2", "model_adv_l2",
                                    "model_rand_l2", "logits_adv_l2", "specificity_l2"}
    assert all(v is not None for v in out["headline"].values())
    assert detail["l2"]["rows"] == np.flatnonzero(sel).tolist()
    # without l2, the first norm names the headline
    out, _ = percept(readout, x, {"linf": adv}, {"linf": sel}, scans=["a", "b"],
                     layers=["layer1", "layer3"], seed=0, replicates=0, boot_seed=0)
    assert set(out["headline"]) == {f"{k}_linf" for k in (
        "v1_adv", "v1_rand", "model_adv", "model_rand", "logits_adv", "specificity")}
    assert out["norms"]["linf"]["readouts"][0]["adv"]["ci_low"] is None  # no replicates
