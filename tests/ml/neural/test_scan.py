import numpy as np
import pytest

from ml.neural.scan import RecordingError, Scan, default_oracle_ids


def _parts(n_img=6, oracle=(0, 1), repeats=3, neurons=4, seed=0):
    rng = np.random.default_rng(seed)
    singles = [i for i in range(n_img) if i not in oracle]
    trial_ids = np.array(singles + [o for o in oracle for _ in range(repeats)])
    t = trial_ids.size
    tiers = np.where(np.isin(trial_ids, oracle), "test", "train").astype("<U10")
    tiers[len(singles) - 1] = "validation"
    return dict(
        name="s1",
        images=rng.uniform(size=(n_img, 1, 36, 64)),
        image_ids=np.arange(n_img),
        trial_image_ids=trial_ids,
        responses=rng.gamma(1.0, size=(t, neurons)),
        behavior=rng.normal(size=(t, 4)),
        tiers=tiers,
        oracle_ids=np.array(oracle),
    )


def test_a_valid_scan_normalises_types_and_indexes_trials():
    scan = Scan(**_parts())
    assert scan.images.dtype == np.float32 and scan.responses.dtype == np.float32
    assert scan.n_trials == 10 and scan.n_neurons == 4
    np.testing.assert_array_equal(scan.image_ids[scan.trial_index()], scan.trial_image_ids)
    ids, trials = scan.oracle_repeats()
    assert ids.tolist() == [0, 1] and [len(t) for t in trials] == [3, 3]
    np.testing.assert_array_equal(scan.neurons["unit_ids"], np.arange(4))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.update(images=p["images"][:, :, :32]), r"\(N, 1, 36, 64\)"),
        (lambda p: p.update(image_ids=np.zeros(6)), "unique"),
        (lambda p: p.update(responses=p["responses"][:-1]), "trial_image_ids must have shape"),
        (lambda p: p.update(behavior=p["behavior"][:, :3]), "behavior must have shape"),
        (lambda p: p["responses"].__setitem__((2, 1), np.nan), "responses has 1 NaN/inf"),
        (lambda p: p["behavior"].__setitem__((0, 0), np.inf), "behavior has 1 NaN/inf"),
        (lambda p: p["images"].__setitem__((0, 0, 0, 0), 1.5), r"\[0, 1\]"),
        (lambda p: p["trial_image_ids"].__setitem__(0, 99), "unknown image ids"),
        (lambda p: p.update(oracle_ids=np.array([0, 1, 2])), "at least 2 repeats"),
        (lambda p: p.update(oracle_ids=np.array([0])), "at least 2 oracle"),
        (lambda p: p.update(oracle_ids=np.array([0, 42])), "not among image_ids"),
        (lambda p: p["tiers"].__setitem__(0, "holdout"), "unknown tiers"),
        (lambda p: p.update(neurons={"area": np.array(["V1"] * 3)}), "neurons\\['area'\\]"),
    ],
)
def test_bad_recordings_are_refused_with_a_message_naming_the_problem(change, message):
    parts = _parts()
    change(parts)
    with pytest.raises(RecordingError, match=message) as info:
        Scan(**parts)
    assert "scan 's1'" in str(info.value)


def test_oracle_trials_may_not_be_trained_on():
    parts = _parts()
    parts["tiers"][-1] = "train"
    with pytest.raises(RecordingError, match="train tier"):
        Scan(**parts)


def test_default_oracle_ids_are_the_repeated_test_images():
    ids = np.array([5, 5, 7, 8, 8, 8, 9])
    tiers = np.array(["test", "test", "test", "test", "test", "train", "train"])
    assert default_oracle_ids(ids, tiers).tolist() == [5, 8]
