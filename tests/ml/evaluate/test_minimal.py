"""Minimal perturbations on a small trained CPU model: the invariants of the scheme."""

import numpy as np
import pytest
import torch

from ml.evaluate.attacks import AttackRun, schedule
from ml.evaluate.checks import MARGIN, logit_margin, settle
from ml.evaluate.minimal import distances, minimal_perturbations, starting_points

# one of each kind, kept short for a CPU: B&B (numba), CW, DDN, EAD, and two ε searches
RUNS = [
    AttackRun("L2BrendelBethgeAttack", "l2", {"lr": 0.01, "steps": 30}, iterations=30),
    AttackRun("L2CarliniWagnerAttack", "l2", {"steps": 30, "binary_search_steps": 3},
              iterations=90),
    AttackRun("DDNAttack", "l2", {"steps": 30}, iterations=30),
    AttackRun("EADAttack", "l1", {"steps": 30, "binary_search_steps": 3}, iterations=90),
    AttackRun("LinfPGD", "linf", {"abs_stepsize": 0.01, "steps": 20}, search=True,
              iterations=120),
    AttackRun("SparseL1DescentAttack", "l1", {"steps": 10}, search=True, iterations=60),
]


@pytest.fixture(scope="module")
def result(trained):
    model, x, y = trained
    ids = np.arange(0, 60)
    return minimal_perturbations(model, x[ids], y[ids], RUNS, ids=ids, pool=(x, y),
                                 num_classes=10, seed=0, batch=32, search_steps=5,
                                 norms=("linf", "l2", "l1", "l0"))


def test_linf_le_l2_le_l1_per_sample(result):
    b = result.best
    assert np.all(b["linf"] <= b["l2"] + 1e-12) and np.all(b["l2"] <= b["l1"] + 1e-12)
    assert np.isfinite(b["l2"]).mean() > 0.9  # the attacks break almost every sample


def test_clean_misclassified_samples_count_zero(result, trained):
    model, x, y = trained
    wrong = ~result.clean_correct
    assert wrong.any() and result.clean_correct.any()
    for norm in ("linf", "l2", "l1", "l0"):
        assert np.all(result.best[norm][wrong] == 0)
        assert np.all(result.best[norm][result.clean_correct] > 0)
    attacked = {r["sample_id"] for r in result.rows}
    assert attacked == set(result.ids[result.clean_correct].tolist())


def test_every_stored_adversarial_re_verifies(result, trained):
    model, x, y = trained
    for norm in ("linf", "l2", "l1"):
        ok = np.isfinite(result.best[norm]) & result.clean_correct
        adv = torch.from_numpy(result.adversarials[norm][ok])
        assert adv.min() >= 0 and adv.max() <= 1
        truth = y[result.ids[ok]]
        # wrong in any batch layout: all at once, one by one, and in the attacks' 32s
        # reversed (another composition of each batch)
        with torch.no_grad():
            for pred in (model(adv).argmax(1),
                         torch.cat([model(a[None]).argmax(1) for a in adv]),
                         torch.cat([model(adv.flip(0)[i:i + 32]).argmax(1)
                                    for i in range(0, len(adv), 32)]).flip(0)):
                assert (pred != truth).all(), norm
            assert (logit_margin(model(adv), truth) > MARGIN / 2).all(), norm
        d = distances(adv, x[result.ids[ok]])[norm].numpy()
        np.testing.assert_allclose(d, result.best[norm][ok], rtol=1e-9, atol=1e-12)


def test_the_table_has_a_row_per_sample_and_attack_run(result):
    n_attacked = int(result.clean_correct.sum())
    assert len(result.rows) <= n_attacked * len(RUNS)
    by_attack = {}
    for r in result.rows:
        by_attack.setdefault(r["attack"], []).append(r)
        if r["success"]:
            assert r["linf"] <= r["l2"] <= r["l1"]
        else:
            assert r["l2"] is None
    assert set(by_attack) == {run.attack for run in RUNS}
    assert len(by_attack["DDNAttack"]) == n_attacked
    csv = result.table_csv().splitlines()
    assert csv[0].startswith("sample_id,label,attack,hyperparameters")
    assert len(csv) == len(result.rows) + 1


def test_budget_curves_only_fall_and_end_at_the_median(result):
    for norm, curve in result.curves.items():
        steps = [s for s, _ in curve]
        meds = [m for _, m in curve]
        assert steps == sorted(steps) and steps[-1] == sum(r.iterations for r in RUNS)
        assert all(b <= a for a, b in zip(meds, meds[1:], strict=False)), norm
        assert meds[-1] == pytest.approx(result.median(norm))


def test_the_eps_search_finds_smaller_linf_than_its_upper_bound(result):
    pgd = [r for r in result.rows if r["attack"] == "LinfPGD" and r["success"]]
    assert pgd and np.median([r["linf"] for r in pgd]) < 0.2


def test_starting_points_are_correct_images_of_another_class():
    pool = torch.tensor([[0.0], [1.0], [2.0], [10.0]]).view(4, 1, 1, 1)
    pool_y = torch.tensor([0, 1, 1, 2])
    pool_pred = torch.tensor([0, 1, 0, 2])  # index 2 is misclassified: never a start
    x = torch.tensor([[1.9], [0.1]]).view(2, 1, 1, 1)
    y = torch.tensor([0, 1])
    assert starting_points(x, y, pool, pool_y, pool_pred).tolist() == [1, 0]
    only_own_class = starting_points(x[:1], y[:1], pool[:1], pool_y[:1], pool_pred[:1])
    assert only_own_class.tolist() == [-1]


def test_same_seed_same_minima(trained):
    model, x, y = trained
    runs = [r for r in RUNS if r.attack in ("LinfPGD", "DDNAttack")]
    a, b = (minimal_perturbations(model, x[:20], y[:20], runs, num_classes=10, seed=5,
                                  search_steps=3).best for _ in range(2))
    for norm in a:  # exact on purpose: the same path twice on one machine
        np.testing.assert_array_equal(a[norm], b[norm])


def test_constant_and_untrained_models_are_refused(trained):
    _, x, y = trained

    class Constant(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(len(x), 10).index_fill_(1, torch.tensor([3]), 1.0)

    with pytest.raises(ValueError, match="predicts class 3 for every sample"):
        minimal_perturbations(Constant(), x[:20], y[:20], RUNS[:1], num_classes=10)
    from ml.models import build_backbone

    torch.manual_seed(0)
    untrained = build_backbone("small_cnn", num_classes=10, width=8)
    with pytest.raises(ValueError, match="evaluate a trained model"):
        minimal_perturbations(untrained, x[:50], y[:50], RUNS[:1], num_classes=10)
    with pytest.raises(ValueError, match="empty"):
        minimal_perturbations(untrained, x[:0], y[:0], RUNS[:1], num_classes=10)
    with pytest.raises(ValueError, match="outside the model bounds"):
        minimal_perturbations(untrained, x[:5] + 1, y[:5], RUNS[:1], num_classes=10)


def test_schedules():
    paper = schedule("paper", ["l2", "linf", "l1", "l0"])
    names = [r.attack for r in paper]
    assert names.count("L2BrendelBethgeAttack") == 6 * 5  # six step sizes, five starts
    assert sorted({r.params["lr"] for r in paper if r.attack == "L2BrendelBethgeAttack"}) == [
        0.0003, 0.001, 0.003, 0.01, 0.03, 0.1]
    pgd = [r for r in paper if r.attack == "LinfPGD"]
    assert len(pgd) == 7 * 5 * 5 and all(r.search for r in pgd)  # the supplement's 5 runs
    assert {r.params["steps"] for r in pgd} == {10, 30, 50, 100, 200}
    assert {r.params["abs_stepsize"] for r in pgd} == {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0}
    assert {"L2CarliniWagnerAttack", "DDNAttack", "LinfAdamPGD", "LinfinityBrendelBethgeAttack",
            "L1BrendelBethgeAttack", "L0BrendelBethgeAttack", "EADAttack",
            "SparseL1DescentAttack", "SparseFool", "JSMA"} <= set(names)
    first_search = next(i for i, r in enumerate(paper) if r.search)
    assert not any(r.search for r in paper[:first_search]) and all(
        r.search for r in paper[first_search:])  # minimizers first: they bound the searches
    assert len(schedule("paper", ["linf"], repeats=3)) == 3 * 6 + 3 * 35 + 3 * 8
    assert len(schedule("quick", ["linf"])) == 2 + 4 + 1  # quick: one run per setting
    with pytest.raises(ValueError, match="norms"):
        schedule("quick", ["l3"])


RANDOM = {"LinfPGD", "LinfAdamPGD", "SparseL1DescentAttack", "L0BrendelBethgeAttack",
          "L1BrendelBethgeAttack", "L2BrendelBethgeAttack", "LinfinityBrendelBethgeAttack"}


def test_the_paper_grid_tests_a_range_of_every_attack_five_times_where_runs_differ():
    """The supplement: "each attack was run five times for each hyperparameter setting"
    and "for each attack we tested a range of hyperparameters". An attack with a random
    element runs 5× per setting; a deterministic one (C&W, DDN, EAD, JSMA, SparseFool)
    would return the same adversarial 5×, so it runs once per setting."""
    paper = schedule("paper", ["l2", "linf", "l1", "l0"])
    by_attack: dict[str, list] = {}
    for r in paper:
        by_attack.setdefault(r.attack, []).append(r)
    for attack, runs in by_attack.items():
        settings = {tuple(sorted(r.params.items())) for r in runs}
        assert len(settings) >= 2, f"{attack}: one setting, not a range"
        for setting in settings:
            reps = sorted(r.repeat for r in runs if tuple(sorted(r.params.items())) == setting)
            assert reps == (list(range(5)) if attack in RANDOM else [0]), (attack, setting)
    labels = [r.label for r in paper]
    assert len(labels) == len(set(labels))  # every run tells itself apart
    sf = {r.params["lambda_"] for r in by_attack["SparseFool"]}
    assert sf == {1.0, 2.0, 3.0}


def test_brendel_bethge_repeats_start_from_the_next_nearest_image():
    pool = torch.tensor([[0.0], [1.0], [2.0], [10.0]]).view(4, 1, 1, 1)
    pool_y = torch.tensor([0, 1, 1, 2])
    pred = pool_y.clone()
    x, y = torch.tensor([[0.2]]).view(1, 1, 1, 1), torch.tensor([0])
    ranks = [starting_points(x, y, pool, pool_y, pred, rank=r).item() for r in range(4)]
    assert ranks == [1, 2, 3, -1]  # nearest other-class first; none left: −1


def test_mean_and_median_of_the_minimal_distances(result):
    s = result.summary()
    for norm in ("l2", "linf"):
        values = result.best[norm]
        if np.isfinite(values).all():
            assert s[f"mean_{norm}"] == pytest.approx(float(values.mean()))
        else:
            assert s[f"mean_{norm}"] is None  # a never-broken sample: an infinite mean
        assert s[f"median_{norm}"] == pytest.approx(float(np.median(values)))


def test_sparse_l1_projection_is_exact_and_per_sample():
    import eagerpy as ep

    from ml.evaluate.attacks import AttackRun

    attack = AttackRun("SparseL1DescentAttack", "l1", {"steps": 5}, search=True).build()
    x0 = ep.astensor(torch.zeros(3, 1, 4, 4))
    x = ep.astensor(torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0)))
    eps = torch.tensor([0.5, 1.0, 100.0]).view(3, 1, 1, 1)
    out = attack.project(x, x0, eps).raw
    l1 = out.flatten(1).abs().sum(1)
    assert l1[:2].tolist() == pytest.approx([0.5, 1.0], abs=1e-5)
    assert torch.equal(out[2], x.raw[2])  # already inside its ball: unchanged
    assert (out.sign() * x.raw.sign() >= 0).all()  # shrinks toward x0, never flips


@pytest.mark.parametrize(("name", "params", "norm"), [
    ("JSMA", {"max_fraction": 0.1}, "l0"),
    ("SparseFool", {"steps": 10}, "l1"),
])
def test_jsma_and_sparsefool_find_sparse_adversarials(trained, name, params, norm):
    model, x, y = trained
    run = AttackRun(name, norm, params, iterations=10)
    res = minimal_perturbations(model, x[:16], y[:16], [run], num_classes=10, seed=0,
                                norms=("l0", "l1", "l2", "linf"))
    broken = np.isfinite(res.best["l0"]) & res.clean_correct
    assert broken.mean() > 0.5 * res.clean_correct.mean()  # breaks most samples it attacks
    # sparse: far fewer pixels than a dense attack touches (1,024 here)
    assert np.median(res.best["l0"][broken]) < 200
    if name == "JSMA":  # at most max_fraction of the pixels, two per iteration
        assert res.best["l0"][broken].max() <= 2 * int(0.1 * 1024 / 2)


def test_a_starting_point_that_flipped_is_left_out_not_fatal(trained, monkeypatch):
    """B&B asserts that every starting point is adversarial. A GPU can flip a borderline
    pool image between the batch that chose it and the attack's batch (seen on an H200);
    here sample 0 is given an image of its own class, as such a flip would."""
    import ml.evaluate.minimal as minimal

    model, x, y = trained
    ids = np.arange(0, 12)
    with torch.no_grad():
        pred = model(x).argmax(1)
    chosen = starting_points(x[ids], y[ids], x, y, pred)
    first = int(np.flatnonzero((pred[ids] == y[ids]).numpy())[0])  # a sample B&B attacks
    same = int(np.flatnonzero(((y == y[first]) & (pred == y)).numpy()
                              & (np.arange(len(y)) != first))[0])
    chosen[first] = same  # an image of its own class: not adversarial for it
    monkeypatch.setattr(minimal, "starting_points", lambda *a, **k: chosen.clone())
    res = minimal_perturbations(model, x[ids], y[ids], [RUNS[0]], ids=ids, pool=(x, y),
                                num_classes=10, seed=0, batch=32, norms=("l2",))
    rows = {r["sample_id"]: r for r in res.rows}
    assert first not in rows and np.isinf(res.best["l2"][first])  # B&B never ran on it
    others = [i for i in ids if res.clean_correct[i] and i != first]
    assert others and all(rows[i]["success"] for i in others)  # the rest were attacked


def test_minimal_csv_keeps_each_label_in_one_column(result):
    """A run's label holds its hyperparameters with commas ("LinfPGD(abs_stepsize=0.01,
    steps=20)"): the artifact quotes it, so a CSV reader gets the label back whole."""
    import csv
    import io

    from ml.evaluate.run import _minimal_csv

    norms = ("linf", "l2")
    rows = list(csv.DictReader(io.StringIO(_minimal_csv(result, norms))))
    assert len(rows) == len(result.ids)
    assert any("," in label for label in result.best_attack["linf"])  # the case at hand
    for i, row in enumerate(rows):
        assert len(row) == 3 + 2 * len(norms) and None not in row  # no spilled columns
        for n in norms:
            assert row[f"{n}_attack"] == result.best_attack[n][i]
            d = result.best[n][i]
            assert row[n] == ("inf" if np.isinf(d) else f"{d:.8g}")


def test_settle_moves_a_boundary_point_past_the_margin_and_keeps_budgets():
    # two classes on 1×2×2 images: z = (0.5, pixel 0), so class 1 from pixel 0 > 0.5 on
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].weight[1, 0] = 1.0
        model[1].bias.copy_(torch.tensor([0.5, 0.0]))
    x = torch.zeros(3, 1, 2, 2)
    y = torch.zeros(3, dtype=torch.long)
    adv = x.clone()
    adv[:, 0, 0, 0] = torch.tensor([0.5 + 1e-6, 0.9, 0.2])  # wrong by 1e-6; by far; right
    out, ok, moved = settle(model, adv.clone(), x, y)
    assert ok.tolist() == [True, True, False] and moved.tolist() == [True, False, False]
    assert logit_margin(model(out[:2]), y[:2]).min() > MARGIN
    # δ = 1e-4 moves it 5e-5, not enough; δ = 1e-3 is the first that is
    assert float(out[0, 0, 0, 0]) == pytest.approx((0.5 + 1e-6) * 1.001, rel=1e-6)
    assert torch.equal(out[1:], adv[1:])
    # a budget that refuses any move: the boundary point is not counted as adversarial
    _, ok, moved = settle(model, adv.clone(), x, y,
                          within=lambda a, x0: torch.zeros(len(a), dtype=torch.bool))
    assert ok.tolist() == [False, True, False] and not moved.any()
