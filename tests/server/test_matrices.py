"""Big similarity matrices for the dashboard: exact block means and exact sub-blocks."""

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.lifecycle import finish_run
from core.settings import Settings
from core.store.artifacts import save_artifact
from core.store.db import session_scope
from core.store.models import RunStatus, User
from core.store.runs import create_run
from ml.neural.estimators import unit_vectors
from ml.neural.overview import leading_order, pooled
from ml.neural.target import SimilarityTarget
from tests.floats import assert_within, two_paths


def stored_targets(settings: Settings, n: int, d: int = 40) -> int:
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((n, 3))
    model = unit_vectors(latent @ rng.standard_normal((3, d)) + 0.3 * rng.standard_normal((n, d)))
    data = unit_vectors(latent @ rng.standard_normal((3, d)) + 1.0 * rng.standard_normal((n, d)))
    images = rng.random((n, 1, 36, 64), dtype=np.float32)
    with session_scope(settings.db_url) as s:
        run = create_run(s, owner=s.query(User).first(), kind="similarity", name="", config={})
        for kind, f in (("neural-model", model), ("neural-data", data)):
            t = SimilarityTarget(kind, f, np.arange(n) + 1000, images)
            save_artifact(s, settings.artifacts, run_id=run.id, name=f"target-{kind}.npz",
                          data=t.to_bytes(), media_type="application/x-npz")
        finish_run(s, run.id, RunStatus.succeeded)
        return run.id


def test_block_means_are_exact_and_blocks_match_the_matrix():
    rng = np.random.default_rng(1)
    f = unit_vectors(rng.standard_normal((103, 12)))
    order = leading_order(f)
    assert sorted(order) == list(range(103))
    z, edges = pooled(f, order, 10)
    s = (f @ f.T)[np.ix_(order, order)]
    for i in range(10):
        for j in range(10):
            cell = s[edges[i]:edges[i + 1], edges[j]:edges[j + 1]].mean()
            assert abs(z[i, j] - cell) < 1e-5


def test_overview_zoom_and_difference(client: TestClient, settings: Settings) -> None:
    rid = stored_targets(settings, 1500)
    assert sorted(client.get(f"/api/runs/{rid}/matrices").json()) == ["neural-data",
                                                                      "neural-model"]
    over = client.get(f"/api/runs/{rid}/matrices/neural-model", params={"size": 150}).json()
    assert over["n"] == 1500 and not over["exact"] and len(over["z"]) == 150
    blk = client.get(f"/api/runs/{rid}/matrices/neural-model",
                     params={"rows": "100:130", "cols": "0:20"}).json()
    assert blk["exact"] and np.shape(blk["z"]) == (30, 20)
    # the exact block averages to the overview cell that covers it
    assert abs(np.mean(client.get(f"/api/runs/{rid}/matrices/neural-model",
                                  params={"rows": "0:10", "cols": "0:10"}).json()["z"])
               - over["z"][0][0]) < 1e-3
    diff = client.get(f"/api/runs/{rid}/matrices/neural-model",
                      params={"rows": "0:5", "cols": "0:5", "minus": "neural-data"}).json()
    data = client.get(f"/api/runs/{rid}/matrices/neural-data",
                      params={"rows": "0:5", "cols": "0:5"}).json()
    assert np.allclose(np.array(diff["z"]) + np.array(data["z"]),
                       blk_full(client, rid), atol=2e-4)
    too_big = client.get(f"/api/runs/{rid}/matrices/neural-model",
                         params={"rows": "0:700", "cols": "0:10"})
    assert too_big.status_code == 422
    assert client.get(f"/api/runs/{rid}/matrices/shuffle").status_code == 404


def blk_full(client: TestClient, rid: int) -> np.ndarray:
    return np.array(client.get(f"/api/runs/{rid}/matrices/neural-model",
                               params={"rows": "0:5", "cols": "0:5"}).json()["z"])


def test_feature_overview_streams_to_the_exact_block_means():
    from ml.neural.overview import feature_block, feature_overview

    rng = np.random.default_rng(3)
    feats = rng.standard_normal((97, 30)).astype(np.float32) + 0.5
    order = rng.permutation(97)
    z, edges, mean = feature_overview(lambda idx: feats[idx], 97, order, 9, batch=10)
    e = feats - feats.mean(0)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    s = (e @ e.T)[np.ix_(order, order)]
    for i in range(9):
        for j in range(9):
            cell = s[edges[i]:edges[i + 1], edges[j]:edges[j + 1]].mean()
            assert abs(z[i, j] - cell) < 1e-5
    blk = feature_block(lambda idx: feats[idx], order, slice(3, 9), slice(50, 60), mean)
    assert np.allclose(blk, s[3:9, 50:60], atol=1e-5)
    # several layers from one pass each; blocks mixed by weights (Eq. 10's γ)
    from ml.neural.overview import feature_blocks, feature_overviews

    other = rng.standard_normal((97, 12)).astype(np.float32)
    both = feature_overviews(lambda idx: [feats[idx], other[idx]], 97, order, 9, batch=10)
    # a layer's overview from the pass that computes several or from its own: the mean over
    # 97 stimuli subtracted, cosines (≤ 1) of rows of ≤ 30 dimensions normalized, blocks of up
    # to ⌈97/9⌉² of them averaged
    bound = two_paths(97 + 2 * 30 + 2 + 11 * 11, 1.0, np.float32)
    assert_within(both[0][0], z, bound)
    alone = feature_overview(lambda idx: other[idx], 97, order, 9, batch=10)
    assert_within(both[1][0], alone[0], bound)
    mixed = feature_blocks(lambda idx: [feats[idx], other[idx]], order, slice(3, 9),
                           slice(50, 60), [mean, alone[2]], [0.25, 0.75])
    second = feature_block(lambda idx: other[idx], order, slice(3, 9), slice(50, 60), alone[2])
    assert np.allclose(mixed, 0.25 * blk + 0.75 * second, atol=1e-5)


def queued(settings: Settings, task: str) -> list[dict]:
    """The messages for ``task`` waiting in the embedded broker."""
    import base64
    import json

    out = []
    for path in sorted((settings.broker_dir / "queue").glob("*.msg")):
        message = json.loads(path.read_text())
        if message["headers"]["task"] == task:
            out.append(json.loads(base64.b64decode(message["body"]))[0])
    return out


@pytest.fixture
def worker_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Worker tasks called in this process see the test's settings."""
    from core.settings import get_settings

    monkeypatch.setenv("NEUROREG_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_a_train_run_shows_its_target_and_s_cnn_per_tap(client: TestClient, settings: Settings,
                                                        worker_env: None):
    import dataclasses

    import torch

    from ml.models import build_backbone
    from ml.train import TrainConfig
    from ml.train.classifier import checkpoint_bytes

    sim = stored_targets(settings, 300)
    torch.manual_seed(0)
    model = build_backbone("small_cnn", num_classes=10, width=4).eval()
    cfg = TrainConfig(backbone="small_cnn", width=4, target="neural-model", target_run=sim)
    with session_scope(settings.db_url) as s:
        run = create_run(s, owner=s.query(User).first(), kind="train", name="",
                         config=dataclasses.asdict(cfg), input_run_id=sim)
        save_artifact(s, settings.artifacts, run_id=run.id, name="model.pt",
                      data=checkpoint_bytes(model, cfg, step=0),
                      media_type="application/octet-stream")
        finish_run(s, run.id, RunStatus.succeeded,
                   result={"layers": [1, 2, 3], "gamma": [0.2, 0.5, 0.3]})
        rid = run.id
    assert client.get(f"/api/runs/{rid}/matrices").json() == ["target", "cnn", "cnn-0",
                                                              "cnn-1", "cnn-2"]
    target = client.get(f"/api/runs/{rid}/matrices/target", params={"size": 30}).json()
    same = client.get(f"/api/runs/{sim}/matrices/neural-model", params={"size": 30}).json()
    # exact on purpose: one artifact through one code path (one order for S_target and S_CNN)
    assert target["z"] == same["z"]
    # no stored S_CNN overview: the API runs no network but sends a worker a small job, once
    for _ in range(2):
        wait = client.get(f"/api/runs/{rid}/matrices/cnn-1", params={"size": 30})
        assert wait.status_code == 202 and wait.headers["Retry-After"] == "2"
        assert wait.json()["pending"] is True and "worker" in wait.json()["detail"]
    assert queued(settings, "neuroreg.s_cnn_overview") == [[rid, 30]]
    from worker.tasks import s_cnn_overview

    assert s_cnn_overview(rid, 30) == {"run_id": rid, "size": 30}
    assert s_cnn_overview(rid, 30)["skipped"]  # asked twice: computed once
    over = client.get(f"/api/runs/{rid}/matrices/cnn-1", params={"size": 30}).json()
    assert over["n"] == 300 and len(over["z"]) == 30
    blk = client.get(f"/api/runs/{rid}/matrices/cnn-1",
                     params={"rows": "0:300", "cols": "0:300"}).json()
    z = np.array(blk["z"])
    assert np.allclose(np.diag(z), 1.0, atol=1e-3)  # exact S_CNN: unit diagonal
    e = over["edges"]
    assert abs(z[e[0]:e[1], e[1]:e[2]].mean() - over["z"][0][1]) < 2e-3  # overview = means
    assert client.get(f"/api/runs/{rid}/matrices/cnn-7").status_code == 404

    # Eq. 10's S_CNN: the taps mixed by the final γ; and S_CNN − S_target, exact and overview
    span = {"rows": "10:70", "cols": "5:45"}
    taps = [np.array(client.get(f"/api/runs/{rid}/matrices/cnn-{k}", params=span).json()["z"])
            for k in range(3)]
    mixed = np.array(client.get(f"/api/runs/{rid}/matrices/cnn", params=span).json()["z"])
    assert np.allclose(mixed, 0.2 * taps[0] + 0.5 * taps[1] + 0.3 * taps[2], atol=2e-4)
    tgt = np.array(client.get(f"/api/runs/{rid}/matrices/target", params=span).json()["z"])
    diff = client.get(f"/api/runs/{rid}/matrices/cnn",
                      params={**span, "minus": "target"}).json()["z"]
    assert np.allclose(diff, mixed - tgt, atol=2e-4) and np.abs(diff).max() > 0.05
    over = {"size": 30}
    d1 = client.get(f"/api/runs/{rid}/matrices/cnn-1", params={**over, "minus": "target"})
    c1 = client.get(f"/api/runs/{rid}/matrices/cnn-1", params=over).json()["z"]
    assert np.allclose(d1.json()["z"], np.array(c1) - np.array(target["z"]), atol=2e-4)
    bad = client.get(f"/api/runs/{rid}/matrices/cnn", params={"minus": "neural-data"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "minus"]


def test_a_stored_s_cnn_overview_is_served_without_running_the_network(
        client: TestClient, settings: Settings, worker_env: None) -> None:
    import dataclasses
    import io

    import torch

    from ml.models import build_backbone
    from ml.train import TrainConfig
    from ml.train.classifier import checkpoint_bytes

    sim = stored_targets(settings, 120)
    cfg = TrainConfig(backbone="small_cnn", width=4, target="neural-model", target_run=sim)
    edges = np.linspace(0, 120, 31).round().astype(int)
    stored = io.BytesIO()  # what a worker leaves, here with values no network would give
    np.savez(stored, taps=np.arange(3), edges=edges, n=np.asarray(120),
             z=np.stack([np.full((30, 30), 0.25 * (k + 1), np.float32) for k in range(3)]),
             **{f"mean_{k}": np.zeros(4, np.float32) for k in range(3)})
    with session_scope(settings.db_url) as s:
        run = create_run(s, owner=s.query(User).first(), kind="train", name="",
                         config=dataclasses.asdict(cfg), input_run_id=sim)
        save_artifact(s, settings.artifacts, run_id=run.id, name="model.pt",
                      data=checkpoint_bytes(build_backbone("small_cnn", num_classes=10, width=4),
                                            cfg, step=0), media_type="application/octet-stream")
        save_artifact(s, settings.artifacts, run_id=run.id, name="s-cnn-overview.npz",
                      data=stored.getvalue(), media_type="application/x-npz")
        finish_run(s, run.id, RunStatus.succeeded,
                   result={"layers": [1, 2, 3], "gamma": [0.5, 0.5, 0.0]})
        rid = run.id
    torch.manual_seed(0)
    tap2 = client.get(f"/api/runs/{rid}/matrices/cnn-2", params={"size": 30}).json()
    assert np.allclose(tap2["z"], 0.75) and tap2["edges"] == edges.tolist()
    mixed = client.get(f"/api/runs/{rid}/matrices/cnn", params={"size": 30}).json()
    assert np.allclose(mixed["z"], 0.5 * 0.25 + 0.5 * 0.5)
    # another size than the stored one: a worker adds it (a real S: unit diagonal), and
    # keeps the stored size
    assert client.get(f"/api/runs/{rid}/matrices/cnn-2", params={"size": 120}).status_code == 202
    assert queued(settings, "neuroreg.s_cnn_overview") == [[rid, 120]]
    from worker.tasks import s_cnn_overview

    s_cnn_overview(rid, 120)
    real = client.get(f"/api/runs/{rid}/matrices/cnn-2", params={"size": 120}).json()
    assert real["exact"] and np.allclose(np.diag(real["z"]), 1.0, atol=1e-3)
    assert np.allclose(client.get(f"/api/runs/{rid}/matrices/cnn-2",
                                  params={"size": 30}).json()["z"], 0.75)


def test_fig2_pairs_are_the_extremes_of_s_over_distinct_stimuli(
        client: TestClient, settings: Settings) -> None:
    from ml.neural.overview import extreme_pairs

    rid = stored_targets(settings, 700)
    res = client.get(f"/api/runs/{rid}/matrices/neural-model/pairs", params={"k": 3})
    assert res.status_code == 200, res.text
    got = res.json()
    with session_scope(settings.db_url) as s:
        from core.store.artifacts import get_artifact, resolve

        path = resolve(settings.artifacts, get_artifact(s, rid, "target-neural-model.npz").path)
    target = SimilarityTarget.load(str(path))
    s_full = target.factor.astype(np.float64) @ target.factor.T.astype(np.float64)
    upper = s_full[np.triu_indices(700, 1)]
    assert abs(got["high"][0]["s"] - upper.max()) < 1e-3
    assert abs(got["low"][0]["s"] - upper.min()) < 1e-3
    for side in ("high", "low"):
        ids = [x for p in got[side] for x in (p["i"], p["j"])]
        assert len(got[side]) == 3 and len(set(ids)) == 6  # distinct stimuli
        p = got[side][0]
        assert p["image_ids"] == [p["i"] + 1000, p["j"] + 1000]
        assert np.array_equal(np.array(p["images"][0]),
                              np.round(target.images[p["i"], 0] * 255).astype(int))
    values = [p["s"] for p in got["high"]]
    assert values == sorted(values, reverse=True)
    served = {side: [(p["i"], p["j"], p["s"]) for p in got[side]] for side in ("high", "low")}
    assert_greedy_extremes(target.factor, served, 3, tol=F32_S + 5e-5)  # "s" has 4 decimals
    # any blocking gives the same pairs; the values agree to float32 rounding, not bitwise:
    # BLAS sums each S_ij in an order that depends on the block shape and the processor
    for block in (64, 700):
        assert_greedy_extremes(target.factor, extreme_pairs(target.factor, 3, block=block), 3)
    assert client.get(f"/api/runs/{rid}/matrices/nope/pairs").status_code == 404


def test_a_targets_spectrum_is_the_ml_functions_on_its_stored_file(
        client: TestClient, settings: Settings) -> None:
    from core.store.artifacts import get_artifact, resolve
    from ml.neural.target import spectrum

    rid = stored_targets(settings, 300)
    res = client.get(f"/api/runs/{rid}/matrices/neural-model/spectrum")
    assert res.status_code == 200, res.text
    got = res.json()
    with session_scope(settings.db_url) as s:
        path = resolve(settings.artifacts, get_artifact(s, rid, "target-neural-model.npz").path)
    want = spectrum(SimilarityTarget.load(str(path)).factor)
    assert got["n"] == 300 and got["rank"] == want.rank == 40  # a (300, 40) factor
    np.testing.assert_allclose(got["fractions"], want.fractions, rtol=1e-12)
    assert got["participation_ratio"] == pytest.approx(want.participation_ratio, rel=1e-12)
    assert [got[f"components_{p}"] for p in (50, 90, 99)] == [
        want.components_50, want.components_90, want.components_99]
    # three latent directions and noise: fewer than the rank span it effectively
    assert 1 < got["participation_ratio"] < 40 and abs(sum(got["fractions"]) - 1) < 1e-9
    capped = client.get(f"/api/runs/{rid}/matrices/neural-model/spectrum",
                        params={"max_components": 5}).json()
    assert capped["fractions"] == got["fractions"][:5]
    assert capped["participation_ratio"] == got["participation_ratio"]
    data = client.get(f"/api/runs/{rid}/matrices/neural-data/spectrum").json()
    assert data["participation_ratio"] != got["participation_ratio"]
    # as the pairs route: no such target is a 404 naming it; a bad size names the field
    missing = client.get(f"/api/runs/{rid}/matrices/nope/spectrum")
    assert missing.status_code == 404 and "target-nope.npz" in missing.json()["detail"]
    assert client.get(f"/api/runs/{rid}/matrices/shuffle/spectrum").status_code == 404
    assert client.get(f"/api/runs/{rid + 999}/matrices/neural-model/spectrum").status_code == 404
    bad = client.get(f"/api/runs/{rid}/matrices/neural-model/spectrum",
                     params={"max_components": 0})
    assert bad.status_code == 422 and "max_components" in bad.text
    with session_scope(settings.db_url) as s:  # a train run stores no targets of its own
        train = create_run(s, owner=s.query(User).first(), kind="train", name="", config={}).id
    assert client.get(f"/api/runs/{train}/matrices/neural-model/spectrum").status_code == 404


# S_ij of unit float32 factors, summed in any order: a few ulps of 1 (ulp 1.2e-7)
F32_S = 1e-5


def assert_greedy_extremes(factor: np.ndarray, found: dict, k: int, tol: float = F32_S) -> None:
    """``found`` is a correct Fig. 2 answer up to float32 rounding: per side ``k`` pairs
    i < j of distinct stimuli, each S_ij to within ``tol`` of the exact (float64) value,
    each within ``tol`` of the most extreme pair of stimuli not picked before it. Where no
    other pair is that close, this admits exactly one answer; where pairs tie to within
    rounding, any of them."""
    f = np.asarray(factor, np.float64)
    s = f @ f.T
    i_all, j_all = np.triu_indices(len(f), 1)
    for side, sign in (("high", 1.0), ("low", -1.0)):
        assert len(found[side]) == k, side
        free = np.ones(len(f), bool)
        for i, j, value in found[side]:
            assert i < j and free[i] and free[j], (side, i, j)
            assert abs(value - s[i, j]) <= tol, (side, i, j, value, s[i, j])
            best = (sign * s[i_all, j_all])[free[i_all] & free[j_all]].max()
            assert sign * s[i, j] >= best - tol, (side, i, j)
            free[[i, j]] = False


def test_fig2_pairs_stay_exact_when_one_stimulus_resembles_every_other():
    """A hub (say a blank frame) is the most similar partner of every stimulus: every row's
    best entry pairs with it, yet after the hub's pair the next picks must avoid it."""
    from ml.neural.overview import extreme_pairs

    rng = np.random.default_rng(2)
    n, d = 300, 1000
    u = rng.standard_normal((n, d))
    u[:, 0] = 0
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    f = (0.7 * np.eye(d)[0] + np.sqrt(1 - 0.7**2) * u).astype(np.float32)
    f[-1] = np.eye(d, dtype=np.float32)[0]  # S(x, hub) = 0.7 > S(x, y) for all others
    for block in (16, 64, 300):
        found = extreme_pairs(f, 3, block=block)
        assert_greedy_extremes(f, found, 3)
        assert sum(n - 1 in (i, j) for i, j, _ in found["high"]) == 1
