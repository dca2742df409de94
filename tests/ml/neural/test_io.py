"""Recording importers, each on a small fixture written in that exact format."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from ml.neural.io import load_npz, load_nwb, load_recording, load_sensorium, save_npz
from ml.neural.io.npz import FORMAT
from ml.neural.scan import RecordingError, Scan
from tests.floats import assert_mean, assert_within, one_path, two_paths

# ---------------------------------------------------------------- Sensorium file tree

# (frame_image_id, tier, presentations): the Sensorium mix of unique train/validation
# images, repeated test and final_test images, and a "none" tier that is dropped
SENSORIUM_PLAN = (
    *[(i, "train", 1) for i in range(20, 30)],
    (30, "validation", 1),
    (31, "validation", 1),
    (40, "test", 4),
    (41, "test", 4),
    (50, "final_test", 3),
    (60, "none", 2),
)
N_NEURONS = 6


def write_sensorium(root: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """A scan directory as unzipped from gin.g-node.org/cajal/Sensorium2022."""
    rng = np.random.default_rng(seed)
    ids = np.array([i for i, _, k in SENSORIUM_PLAN for _ in range(k)])
    tiers = np.array([t for _, t, k in SENSORIUM_PLAN for _ in range(k)])
    order = rng.permutation(ids.size)  # file names carry no presentation order
    ids, tiers = ids[order], tiers[order]
    pictures = {i: rng.integers(0, 256, (1, 144, 256)).astype(np.float32) for i in set(ids)}
    responses = rng.gamma(1.0, 1.0, (ids.size, N_NEURONS)).astype(np.float32)
    behavior = rng.normal(size=(ids.size, 3)).astype(np.float32)
    pupil = rng.normal(size=(ids.size, 2)).astype(np.float32)
    for key in ("images", "responses", "behavior", "pupil_center"):
        (root / "data" / key).mkdir(parents=True)
    for t in range(ids.size):
        np.save(root / f"data/images/{t}.npy", pictures[int(ids[t])])
        np.save(root / f"data/responses/{t}.npy", responses[t])
        np.save(root / f"data/behavior/{t}.npy", behavior[t])
        np.save(root / f"data/pupil_center/{t}.npy", pupil[t])
    (root / "meta/trials").mkdir(parents=True)
    (root / "meta/neurons").mkdir(parents=True)
    np.save(root / "meta/trials/tiers.npy", tiers)
    np.save(root / "meta/trials/frame_image_id.npy", ids)
    np.save(root / "meta/trials/trial_idx.npy", order)
    neurons = {
        "unit_ids": np.arange(1, N_NEURONS + 1),
        "cell_motor_coordinates": rng.normal(size=(N_NEURONS, 3)),
        "area": np.array(["V1"] * N_NEURONS),
        "layer": np.array(["L2/3"] * N_NEURONS),
        "animal_ids": np.full(N_NEURONS, 23343),
        "sessions": np.full(N_NEURONS, 5),
        "scan_idx": np.full(N_NEURONS, 17),
    }
    for key, value in neurons.items():
        np.save(root / f"meta/neurons/{key}.npy", value)
    return {
        "ids": ids,
        "tiers": tiers,
        "responses": responses,
        "behavior": behavior,
        "pupil": pupil,
        "pictures": pictures,
    }


@pytest.fixture
def sensorium(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path / "static23343-5-17-GrayImageNet"
    return root, write_sensorium(root)


def blocks(picture: np.ndarray, factor: int) -> np.ndarray:
    """The 8-bit picture in [0, 1] as (h/f, f, w/f, f): the blocks the loader averages."""
    h, w = picture.shape[-2:]
    return (picture.astype(np.float64) / 255).reshape(h // factor, factor, w // factor, factor)


def test_sensorium_values_tiers_and_images(sensorium: tuple[Path, dict]) -> None:
    root, truth = sensorium
    scan = load_sensorium(root)
    kept = np.flatnonzero(truth["tiers"] != "none")

    assert scan.name == "23343-5-17"  # the neuralpredictors data key
    assert scan.n_trials == kept.size == 23 and scan.n_neurons == N_NEURONS
    np.testing.assert_array_equal(scan.trial_image_ids, truth["ids"][kept])
    # exact on purpose: responses and behaviour are read, not computed
    np.testing.assert_array_equal(scan.responses, truth["responses"][kept])
    row = 5  # behaviour columns: pupil x, pupil y, dilation, running speed (not its derivative)
    b, p = truth["behavior"][kept[row]], truth["pupil"][kept[row]]
    np.testing.assert_array_equal(scan.behavior[row], [p[0], p[1], b[0], b[2]])

    expected_tiers = np.where(truth["tiers"] == "final_test", "test", truth["tiers"])[kept]
    np.testing.assert_array_equal(scan.tiers, expected_tiers)
    assert (scan.tiers == "test").sum() == 11 and (scan.tiers == "validation").sum() == 2
    np.testing.assert_array_equal(scan.oracle_ids, [40, 41, 50])
    assert 60 not in scan.image_ids  # only shown in the dropped "none" tier
    np.testing.assert_array_equal(scan.image_ids, sorted(set(truth["ids"][kept].tolist())))

    row = int(np.flatnonzero(scan.image_ids == 41)[0])
    assert_mean(scan.images[row, 0], blocks(truth["pictures"][41][0], 4), axis=(1, 3))
    assert scan.images.shape == (15, 1, 36, 64) and scan.images.dtype == np.float32
    np.testing.assert_array_equal(scan.neurons["unit_ids"], np.arange(1, 7))
    assert scan.neurons["cell_motor_coordinates"].shape == (N_NEURONS, 3)
    assert scan.neurons["area"].tolist() == ["V1"] * N_NEURONS


def test_sensorium_repeats_share_the_first_trials_image(sensorium: tuple[Path, dict]) -> None:
    root, truth = sensorium
    shown = np.flatnonzero(truth["ids"] == 40)  # trial files showing image 40
    np.save(root / f"data/images/{shown[-1]}.npy", np.zeros((1, 144, 256), np.float32))
    scan = load_sensorium(root, name="mouse")
    assert scan.name == "mouse"
    row = int(np.flatnonzero(scan.image_ids == 40)[0])
    assert_mean(scan.images[row, 0], blocks(truth["pictures"][40][0], 4), axis=(1, 3))
    kept = np.flatnonzero(truth["tiers"] != "none")
    assert (scan.trial_index()[np.searchsorted(kept, shown)] == row).all()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: (r / "data/responses/7.npy").unlink(), "data/responses has 24 trial files"),
        (
            lambda r: (r / "data/behavior/7.npy").rename(r / "data/behavior/x.npy"),
            "data/behavior/7.npy is missing",
        ),
        (
            lambda r: np.save(r / "data/images/25.npy", np.zeros((1, 144, 256))),
            "data/images has 26 trial files but meta/trials/tiers.npy lists 25",
        ),
        (lambda r: (r / "meta/trials/tiers.npy").unlink(), "missing meta/trials/tiers.npy"),
        (
            lambda r: np.save(r / "meta/trials/frame_image_id.npy", np.arange(3)),
            "frame_image_id.npy has shape (3,)",
        ),
        (
            lambda r: np.save(r / "data/responses/3.npy", np.zeros(5)),
            "data/responses/3.npy has 5 values, expected 6",
        ),
        (
            lambda r: np.save(r / "data/responses/0.npy", np.full(6, np.nan)),
            "responses has 6 NaN/inf values",
        ),
        (
            lambda r: np.save(r / "data/images/0.npy", np.full((1, 144, 256), 300.0)),
            "data/images/0.npy: pixel values in [300, 300]",
        ),
        (
            lambda r: np.save(r / "data/images/0.npy", np.zeros((1, 100, 100))),
            "100×100 image does not have the 36×64",
        ),
        (
            lambda r: np.save(
                r / "meta/trials/tiers.npy", np.array(["x"] * 25, dtype=object), allow_pickle=True
            ),
            "cannot read meta/trials/tiers.npy",
        ),
    ],
)
def test_sensorium_refuses_damaged_trees(
    sensorium: tuple[Path, dict], damage, message: str
) -> None:
    root, _ = sensorium
    damage(root)
    with pytest.raises(RecordingError, match=re.escape(message)):
        load_sensorium(root)


# ---------------------------------------------------------------- NWB


NWB_RATE = 10.0  # imaging frames per second
ROI_IDS = np.arange(100, 108)


def presentation_plan(seed: int = 0) -> np.ndarray:
    """Frame shown per presentation: frames 0–2 six times each, 3–11 once."""
    frames = np.array([*[f for f in range(3) for _ in range(6)], *range(3, 12)])
    return np.random.default_rng(seed).permutation(frames)


def write_nwb(
    path: Path,
    *,
    tiers: list[str] | None = None,
    template: str = "images",
    behavior: tuple[str, ...] = ("pupil_position", "pupil_size", "running_speed"),
    fluorescence: bool = False,
    frames: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """A two-photon session written with pynwb: 12 images 72×128, 8 ROIs, 27 presentations."""
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.base import ImageReferences, Images
    from pynwb.behavior import PupilTracking
    from pynwb.epoch import TimeIntervals
    from pynwb.image import GrayscaleImage, ImageSeries
    from pynwb.ophys import DfOverF, Fluorescence, ImageSegmentation, OpticalChannel

    rng = np.random.default_rng(seed)
    nwb = NWBFile(
        session_description="fixture",
        identifier="fixture",
        session_start_time=datetime(2024, 1, 1, tzinfo=UTC),
    )
    pictures = rng.integers(0, 256, (12, 72, 128), dtype=np.uint8)
    if template == "images":
        refs = [
            GrayscaleImage(name=f"img{i:02d}", data=p, description="photo")
            for i, p in enumerate(pictures)
        ]
        nwb.add_stimulus_template(
            Images(
                name="natural",
                images=refs[::-1],
                description="stimuli",
                order_of_images=ImageReferences(name="order_of_images", data=refs),
            )
        )
    else:
        nwb.add_stimulus_template(
            ImageSeries(name="natural", data=pictures, unit="n.a.", rate=1.0, format="raw")
        )

    frames = presentation_plan(seed) if frames is None else frames
    start = 1.0 * np.arange(frames.size) + 0.05
    table = TimeIntervals(name="stimulus_presentations", description="one image each")
    table.add_column("image_id", "frame index into the stimulus template")
    if tiers is not None:
        table.add_column("tier", "data split")
    for k, frame in enumerate(frames.tolist()):
        extra = {} if tiers is None else {"tier": tiers[k]}
        table.add_row(start_time=start[k], stop_time=start[k] + 0.5, image_id=frame, **extra)
    nwb.add_time_intervals(table)

    device = nwb.create_device(name="scope")
    plane = nwb.create_imaging_plane(
        name="plane",
        optical_channel=OpticalChannel(name="green", description="GCaMP", emission_lambda=510.0),
        imaging_rate=NWB_RATE,
        description="V1",
        device=device,
        excitation_lambda=920.0,
        indicator="GCaMP6s",
        location="V1",
    )
    ophys = nwb.create_processing_module("ophys", "two-photon")
    segmentation = ImageSegmentation()
    ophys.add(segmentation)
    rois = segmentation.create_plane_segmentation(
        name="rois", description="cells", imaging_plane=plane
    )
    for i, roi in enumerate(ROI_IDS.tolist()):
        rois.add_roi(pixel_mask=[(i, i, 1.0)], id=roi)
    region = rois.create_roi_table_region(region=list(range(ROI_IDS.size)), description="all")
    n_samples = int(27 * NWB_RATE)  # [0, 27) s: just the 27 planned presentations
    dff = rng.normal(size=(n_samples, ROI_IDS.size)).astype(np.float32)
    # Containers join the file before their series: a DynamicTableRegion set on a parent
    # outside the file warns that its table "does not share an ancestor".
    container = Fluorescence() if fluorescence else DfOverF()
    ophys.add(container)
    container.create_roi_response_series(
        name="traces", data=dff, rois=region, unit="n.a.", rate=NWB_RATE, starting_time=0.0
    )

    module = nwb.create_processing_module("behavior", "eye and treadmill")
    pupil_t = np.arange(n_samples * 2) / (2 * NWB_RATE)  # eye camera at 20 Hz
    position = rng.normal(size=(pupil_t.size, 2))
    size = rng.gamma(2.0, 1.0, pupil_t.size)
    speed = rng.normal(size=n_samples)
    if "pupil_position" in behavior:
        module.add(
            PupilTracking(
                time_series=TimeSeries(
                    name="pupil_position", data=position, unit="px", timestamps=pupil_t
                )
            )
        )
    if "pupil_size" in behavior:
        module.add(TimeSeries(name="pupil_size", data=size, unit="px", timestamps=pupil_t))
    if "running_speed" in behavior:
        module.add(TimeSeries(name="running_speed", data=speed, unit="cm/s", rate=NWB_RATE))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return {
        "frames": frames,
        "start": start,
        "dff": dff,
        "pictures": pictures,
        "position": position,
        "size": size,
        "speed": speed,
    }


@pytest.mark.parametrize("template", ["images", "image_series"])
def test_nwb_values_tiers_and_images(tmp_path: Path, template: str) -> None:
    truth = write_nwb(tmp_path / "session.nwb", template=template)
    scan = load_nwb(tmp_path / "session.nwb")

    assert scan.name == "session" and scan.n_trials == 27 and scan.n_neurons == 8
    np.testing.assert_array_equal(scan.trial_image_ids, truth["frames"])
    k = 7  # window [k + 0.05, k + 0.55) s holds imaging frames 10k+1 … 10k+5 at 10 Hz
    assert_mean(scan.responses[k], truth["dff"][10 * k + 1 : 10 * k + 6], axis=0)
    eye = slice(20 * k + 1, 20 * k + 11)  # 20 Hz: samples 20k+1 … 20k+10
    assert_mean(scan.behavior[k, :2], truth["position"][eye], axis=0)
    assert_mean(scan.behavior[k, 2], truth["size"][eye], axis=0)
    assert_mean(scan.behavior[k, 3], truth["speed"][10 * k + 1 : 10 * k + 6], axis=0)
    np.testing.assert_array_equal(scan.neurons["unit_ids"], ROI_IDS)

    np.testing.assert_array_equal(scan.image_ids, np.arange(12))
    assert_mean(scan.images[9, 0], blocks(truth["pictures"][9], 2), axis=(1, 3))

    repeated = np.isin(truth["frames"], [0, 1, 2])
    assert (scan.tiers[repeated] == "test").all()
    assert sorted(scan.tiers[~repeated].tolist()) == ["train"] * 8 + ["validation"]
    np.testing.assert_array_equal(scan.oracle_ids, [0, 1, 2])
    again = load_nwb(tmp_path / "session.nwb")  # the seeded split is reproducible
    np.testing.assert_array_equal(again.tiers, scan.tiers)


def test_nwb_tier_column_is_mapped_and_filtered(tmp_path: Path) -> None:
    frames = presentation_plan()
    tiers = ["test" if f in (0, 1) else "final_test" if f == 2 else "train" for f in frames]
    tiers[int(np.flatnonzero(frames == 11)[0])] = "none"
    tiers[int(np.flatnonzero(frames == 10)[0])] = "validation"
    write_nwb(tmp_path / "s.nwb", tiers=tiers)
    scan = load_nwb(tmp_path / "s.nwb")

    assert scan.n_trials == 26 and 11 not in scan.image_ids
    assert (scan.tiers[scan.trial_image_ids == 2] == "test").all()
    assert scan.tiers[scan.trial_image_ids == 10].tolist() == ["validation"]
    np.testing.assert_array_equal(scan.oracle_ids, [0, 1, 2])


def test_nwb_picks_a_named_series_and_fills_missing_behavior(tmp_path: Path) -> None:
    truth = write_nwb(tmp_path / "s.nwb", fluorescence=True, behavior=("pupil_position",))
    with pytest.raises(RecordingError, match=r"no pupil size, running speed series"):
        load_nwb(tmp_path / "s.nwb")
    scan = load_nwb(
        tmp_path / "s.nwb", responses="Fluorescence/traces", allow_missing_behavior=True
    )
    assert (scan.behavior[:, 2:] == 0).all() and (scan.behavior[:, :2] != 0).all()
    assert_mean(scan.responses[0], truth["dff"][1:6], axis=0)
    with pytest.raises(RecordingError, match=r"no RoiResponseSeries matches 'dff'"):
        load_nwb(tmp_path / "s.nwb", responses="dff", allow_missing_behavior=True)


def test_nwb_refuses_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nwb"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(RecordingError, match=r"bad.nwb: cannot open as NWB"):
        load_nwb(bad)
    with pytest.raises(RecordingError, match=r"no such NWB file"):
        load_nwb(tmp_path / "absent.nwb")
    write_nwb(tmp_path / "s.nwb")
    with pytest.raises(RecordingError, match=r"no intervals table with a frame column"):
        load_nwb(tmp_path / "s.nwb", image_column="frame")
    with pytest.raises(RecordingError, match=r"no stimulus template 'movie'"):
        load_nwb(tmp_path / "s.nwb", template="movie")


def test_nwb_refuses_what_it_cannot_average_or_split(tmp_path: Path) -> None:
    write_nwb(tmp_path / "late.nwb", frames=np.append(presentation_plan(), [3, 4]))
    with pytest.raises(RecordingError, match=r"traces: no samples within presentation 27 "):
        load_nwb(tmp_path / "late.nwb")  # presentations after the imaging stopped
    write_nwb(tmp_path / "all.nwb", frames=np.array([0, 1, 2] * 8))
    with pytest.raises(RecordingError, match=r"every image is shown more than once"):
        load_nwb(tmp_path / "all.nwb")


# ---------------------------------------------------------------- our .npz


def make_scan(name: str, seed: int = 0) -> Scan:
    rng = np.random.default_rng(seed)
    ids = np.array([3, 5, 8, 13, 21, 34])
    trials = np.array([3, 5, 8, 13, 21, 21, 21, 34, 34, 34])
    tiers = np.array(["train"] * 3 + ["validation"] + ["test"] * 6)
    return Scan(
        name=name,
        images=rng.random((ids.size, 1, 36, 64)).astype(np.float32),
        image_ids=ids,
        trial_image_ids=trials,
        responses=rng.random((trials.size, 5)).astype(np.float32),
        behavior=rng.normal(size=(trials.size, 4)).astype(np.float32),
        tiers=tiers,
        oracle_ids=np.array([21, 34]),
        neurons={
            "unit_ids": np.arange(5) + seed,
            "area": np.array(["V1", "LM"] * 2 + ["AL"], dtype=object),
        },
    )


def assert_same(a: Scan, b: Scan) -> None:
    """Exact on purpose: the same floats written and read back, nothing computed."""
    assert a.name == b.name
    for key in (
        "images",
        "image_ids",
        "trial_image_ids",
        "responses",
        "behavior",
        "tiers",
        "oracle_ids",
    ):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert a.neurons.keys() == b.neurons.keys()
    for key in a.neurons:
        assert a.neurons[key].tolist() == b.neurons[key].tolist()


def test_npz_round_trip_of_two_scans(tmp_path: Path) -> None:
    scans = [make_scan("mouse2-scan1", 0), make_scan("mouse1-scan4", 1)]
    save_npz(scans, tmp_path / "rec.npz")
    loaded = load_npz(tmp_path / "rec.npz")
    assert [s.name for s in loaded] == ["mouse2-scan1", "mouse1-scan4"]  # file order
    for a, b in zip(scans, loaded, strict=True):
        assert_same(a, b)
    with np.load(tmp_path / "rec.npz", allow_pickle=False) as raw:
        assert str(raw["format"]) == FORMAT
        assert "mouse1-scan4/neurons/area" in raw.files
    save_npz(scans[0], tmp_path / "one")  # no ".npz" appended: the path is the path
    assert [s.name for s in load_npz(tmp_path / "one")] == ["mouse2-scan1"]


def hand_made(path: Path, **change: np.ndarray | None) -> None:
    scan = make_scan("x")
    arrays: dict[str, np.ndarray | None] = {
        "images": np.round(scan.images[:, 0] * 255).astype(np.uint8),
        "image_ids": scan.image_ids,
        "trial_image_ids": scan.trial_image_ids,
        "responses": scan.responses,
        "behavior": scan.behavior,
        "tiers": scan.tiers,
    }
    arrays.update(change)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})


def test_npz_hand_made_single_scan(tmp_path: Path) -> None:
    hand_made(tmp_path / "mouse7.npz")
    (scan,) = load_npz(tmp_path / "mouse7.npz")
    assert scan.name == "mouse7" and scan.images.shape == (6, 1, 36, 64)
    raw = np.round(make_scan("x").images[:, 0] * 255).astype(np.uint8)
    # a division and the float32 rounding of each 8-bit pixel
    assert_within(scan.images[:, 0], raw / 255.0, one_path(2, raw / 255.0, np.float32))
    np.testing.assert_array_equal(scan.oracle_ids, [21, 34])  # test images shown twice+
    np.testing.assert_array_equal(scan.neurons["unit_ids"], np.arange(5))

    floats = make_scan("x").images
    hand_made(tmp_path / "f.npz", images=floats, oracle_ids=np.array([21, 34]))
    # exact on purpose: float images already in [0, 1] are stored as they are
    np.testing.assert_array_equal(load_npz(tmp_path / "f.npz")[0].images, floats)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tiers": None}, r"missing key 'tiers'"),
        (
            {"images": np.zeros((6, 72, 128), np.uint8)},
            r"'images' must be \(N, 36, 64\) or \(N, 1, 36, 64\), got \(6, 72, 128\)",
        ),
        ({"images": np.full((6, 36, 64), 255.0)}, r"images must lie in \[0, 1\]"),
        ({"responses": np.full((10, 5), np.nan)}, r"responses has 50 NaN/inf values"),
        (
            {"tiers": np.array(["train"] * 9)},
            r"tiers has shape \(9,\) but trial_image_ids has \(10,\)",
        ),
        (
            {"tiers": np.array(["train"] * 9), "oracle_ids": np.array([21, 34])},
            r"tiers must have shape \(10,\) for 10 trials",
        ),
        (
            {"trial_image_ids": np.array([3, 5, 8, 99] + [21] * 3 + [34] * 3)},
            r"trials show unknown image ids \[99\]",
        ),
        ({"behavior": np.zeros((10, 3))}, r"behavior must have shape \(10, 4\)"),
        ({"tiers": np.array(["train"] * 10, dtype=object)}, r"'tiers' is a pickled object"),
    ],
)
def test_npz_refuses_bad_files(tmp_path: Path, change: dict, message: str) -> None:
    hand_made(tmp_path / "bad.npz", **change)
    with pytest.raises(RecordingError, match=message):
        load_npz(tmp_path / "bad.npz")


def test_npz_refuses_other_formats_and_names(tmp_path: Path) -> None:
    np.savez(tmp_path / "v2.npz", format=np.array("neuroreg-recording/2"))
    with pytest.raises(RecordingError, match=r"format 'neuroreg-recording/2'"):
        load_npz(tmp_path / "v2.npz")
    save_npz(make_scan("a"), tmp_path / "a.npz")
    with np.load(tmp_path / "a.npz") as raw:
        kept = {k: raw[k] for k in raw.files if k != "a/behavior"}
    np.savez(tmp_path / "cut.npz", **kept)
    with pytest.raises(RecordingError, match=r"missing key 'a/behavior'"):
        load_npz(tmp_path / "cut.npz")
    with pytest.raises(RecordingError, match=r"distinct names"):
        save_npz([make_scan("a"), make_scan("a")], tmp_path / "dup.npz")
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(RecordingError, match=r"cannot read as .npz"):
        load_npz(tmp_path / "junk.npz")


# ---------------------------------------------------------------- dispatch


def test_load_recording_dispatches_by_path(tmp_path: Path) -> None:
    write_sensorium(tmp_path / "b-sensorium")
    write_nwb(tmp_path / "a-session.nwb")
    save_npz([make_scan("c1"), make_scan("c2")], tmp_path / "c.npz")
    (tmp_path / "README.txt").write_text("not a recording")

    assert [s.name for s in load_recording(tmp_path / "b-sensorium")] == ["23343-5-17"]
    assert [s.name for s in load_recording(tmp_path / "a-session.nwb")] == ["a-session"]
    assert [s.name for s in load_recording(str(tmp_path / "c.npz"))] == ["c1", "c2"]
    all_scans = load_recording(tmp_path)  # entries in name order, README ignored
    assert [s.name for s in all_scans] == ["a-session", "23343-5-17", "c1", "c2"]


def test_load_recording_refuses_unknown_paths(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "scan.zip").write_bytes(b"PK")
    (tmp_path / "empty").mkdir()
    for path, message in [
        (tmp_path / "notes.txt", r"notes.txt is not a recording; expected a Sensorium"),
        (tmp_path / "scan.zip", r"scan.zip is not a recording \(unzip it first\)"),
        (tmp_path / "empty", r"empty is not a recording; expected .*\.nwb file, an \.npz"),
        (tmp_path / "absent", r"absent does not exist; expected a Sensorium"),
    ]:
        with pytest.raises(RecordingError, match=message):
            load_recording(path)
    save_npz(make_scan("same"), tmp_path / "empty/1.npz")
    save_npz(make_scan("same"), tmp_path / "empty/2.npz")
    with pytest.raises(RecordingError, match=r"several scans are named \['same'\]"):
        load_recording(tmp_path / "empty")


# ---------------------------------------------------------------- shared helpers


def test_window_means_are_half_open_and_skip_blinks() -> None:
    from ml.neural.io._windows import window_means

    times = np.arange(10) * 0.1  # samples at 0.0 … 0.9 s
    data = np.arange(10.0)
    data[6] = np.nan  # a blink
    start, stop = np.array([0.2, 0.5, 0.6]), np.array([0.5, 0.8, 0.7])
    out = window_means(times, data, start, stop, what="s", skip_nan=True)
    np.testing.assert_allclose(out[:, 0], [3.0, 6.0, np.nan])  # 2,3,4 | 5,7 | none left
    with pytest.raises(RecordingError, match=r"s: no samples within presentation 0"):
        window_means(times, data, np.array([2.0]), np.array([3.0]), what="s")


def test_to_stimulus_resizes_other_sizes_by_area() -> None:
    from ml.neural.io._images import to_stimulus

    gradient = np.tile(np.linspace(0, 255, 160), (90, 1))  # 90×160: factor 2.5
    small = to_stimulus(gradient, scale=255.0, where="f")
    assert small.shape == (1, 36, 64) and 0.0 <= small.min() and small.max() <= 1.0
    np.testing.assert_allclose(small.mean(), 0.5, atol=1e-3)
    # columns stay uniform: to rounding (each row is filtered with its own weights), far
    # below the 0.016 step between neighbouring columns; each pixel is ≤ 1, weights summing
    # to 1 over skimage's Gaussian (σ = (2.5 − 1)/2, 7 taps an axis) and bilinear taps (2 an
    # axis), then rounded to float32
    taps = 7 + 7 + 2 + 2 + 1
    assert_within(small[0, :, 32], small[0, 0, 32], two_paths(taps, 1.0, np.float32))
    with pytest.raises(RecordingError, match=r"f: expected a grayscale"):
        to_stimulus(np.zeros((72, 128, 3)), scale=255.0, where="f")


def test_sensorium_images_already_in_0_1_are_refused_not_rescaled_again(
    sensorium: tuple[Path, dict]
) -> None:
    root, truth = sensorium
    for t in range(len(truth["ids"])):  # what a lab that rescaled its copy has
        np.save(root / f"data/images/{t}.npy",
                truth["pictures"][int(truth["ids"][t])].astype(np.float32) / 255)
    with pytest.raises(RecordingError, match=r"data/images: every pixel of the 15 images "
                                             r"is within \[0, 1\].*pixel_max=1"):
        load_sensorium(root)
    scan = load_sensorium(root, pixel_max=1)  # said so: taken as they are
    row = int(np.flatnonzero(scan.image_ids == 41)[0])
    assert_mean(scan.images[row, 0], blocks(truth["pictures"][41][0], 4), axis=(1, 3))
