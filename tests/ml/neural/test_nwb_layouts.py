"""NWB 2 files as labs have them, written independently with pynwb in the conventions of
DANDI/NeuroConv and AllenSDK outputs (not our own writer's layout), each valid under
``pynwb.validate``: what the importer takes from each and what it drops."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from ml.neural.io import load_nwb
from ml.neural.io.nwb import inspect_nwb
from ml.neural.scan import RecordingError
from tests.floats import assert_mean, assert_within, one_path

RATE = 10.0  # imaging, Hz
N_ROIS = 6


def plan(seed: int = 0, singles: int = 12) -> np.ndarray:
    """Frame per presentation: 0–2 five times each, the next ``singles`` once, and 4 blank
    sweeps (-1)."""
    frames = np.array([*[f for f in range(3) for _ in range(5)], *range(3, 3 + singles),
                       -1, -1, -1, -1])
    return np.random.default_rng(seed).permutation(frames)


def write_lab_nwb(path: Path, *, layout: str = "dandi", frames: np.ndarray | None = None,
                  shape: tuple[int, int] = (72, 128), dropout: tuple[float, float] | None = None,
                  singles: int = 12, seed: int = 0) -> dict:
    """A 2-photon session: ``dandi`` keeps behaviour in processing['behavior'] (running
    in a BehavioralTimeSeries, PupilTracking with ``angle`` before ``pupil_area``,
    EyeTracking with the eye position); ``allen`` keeps running speed in
    processing['running'] (``speed`` and ``speed_unfiltered``) and eye tracking in
    acquisition. Both: DfOverF and Fluorescence, each with a series called ``traces``;
    natural images in an Images container; presentations both as an IndexSeries and as
    an Allen-style ``natural_scenes_presentations`` table with a ``frame`` column (blank
    sweeps ``frame = -1``). ``dropout``: seconds with no eye samples."""
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.base import ImageReferences, Images
    from pynwb.behavior import BehavioralTimeSeries, EyeTracking, PupilTracking, SpatialSeries
    from pynwb.epoch import TimeIntervals
    from pynwb.image import GrayscaleImage, IndexSeries
    from pynwb.ophys import DfOverF, Fluorescence, ImageSegmentation, OpticalChannel

    rng = np.random.default_rng(seed)
    nwb = NWBFile(session_description="natural scenes", identifier=f"{layout}-{seed}",
                  session_start_time=datetime(2024, 5, 1, tzinfo=UTC))
    pictures = rng.integers(0, 256, (3 + singles, *shape), dtype=np.uint8)
    refs = [GrayscaleImage(name=f"scene_{i:03d}", data=p, description="natural scene")
            for i, p in enumerate(pictures)]
    scenes = Images(name="natural_scenes", images=refs, description="the scenes shown",
                    order_of_images=ImageReferences(name="order_of_images", data=refs))
    nwb.add_stimulus_template(scenes)
    frames = plan(seed, singles) if frames is None else frames
    onset = 0.5 + 1.0 * np.arange(frames.size)  # 250 ms flashes, one per second
    table = TimeIntervals(name="natural_scenes_presentations",
                          description="AllenSDK-style stimulus table")
    table.add_column("stimulus_name", "the stimulus block")
    table.add_column("frame", "index into natural_scenes; -1 for a blank sweep")
    for t, f in zip(onset.tolist(), frames.tolist(), strict=True):
        table.add_row(start_time=t, stop_time=t + 0.25, stimulus_name="natural_scenes",
                      frame=f)
    nwb.add_time_intervals(table)
    # the same presentations as an IndexSeries, blanks shown as frame 0's neighbour
    shown = frames >= 0
    nwb.add_stimulus(IndexSeries(name="natural_scenes_index", data=frames[shown].astype(np.uint32),
                                 indexed_images=scenes, unit="N/A",
                                 timestamps=onset[shown], description="frame per onset"))

    device = nwb.create_device(name="2p")
    plane = nwb.create_imaging_plane(
        name="plane0", optical_channel=OpticalChannel(name="green", description="GCaMP6f",
                                                      emission_lambda=510.0),
        imaging_rate=RATE, description="VISp", device=device, excitation_lambda=920.0,
        indicator="GCaMP6f", location="VISp")
    ophys = nwb.create_processing_module("ophys", "processed 2-photon data")
    seg = ImageSegmentation()
    ophys.add(seg)
    rois = seg.create_plane_segmentation(name="PlaneSegmentation", description="cells",
                                         imaging_plane=plane)
    for i in range(N_ROIS):
        rois.add_roi(pixel_mask=[(i, i, 1.0)], id=100 + i)
    region = rois.create_roi_table_region(region=list(range(N_ROIS)), description="all")
    n = int((onset[-1] + 2) * RATE)
    t = np.arange(n) / RATE
    # dF/F rises 0.3 s after each onset, so a latency offset matters; negative elsewhere
    lift = np.zeros(n)
    for k, on in enumerate(onset.tolist()):
        lift[(t >= on + 0.3) & (t < on + 0.6)] = 1.0 + (frames[k] % 5)
    dff = (rng.normal(-0.05, 0.05, (n, N_ROIS)) + lift[:, None] * (1 + np.arange(N_ROIS))
           ).astype(np.float32)
    dff_c, flu_c = DfOverF(), Fluorescence()
    ophys.add(dff_c)
    ophys.add(flu_c)
    dff_c.create_roi_response_series(name="traces", data=dff, rois=region, unit="n.a.",
                                     rate=RATE, starting_time=0.0)
    flu_c.create_roi_response_series(name="traces", data=(dff + 2.0) * 100, rois=region,
                                     unit="a.u.", rate=RATE, starting_time=0.0)

    eye_t = np.arange(int(t[-1] * 30)) / 30.0  # eye camera at 30 Hz
    if dropout is not None:
        eye_t = eye_t[(eye_t < dropout[0]) | (eye_t >= dropout[1])]
    area = 1400 + 50 * np.sin(eye_t)
    angle = 0.3 + 0.01 * np.cos(eye_t)
    position = np.stack([np.sin(eye_t / 3), np.cos(eye_t / 3)], axis=1)
    speed = 5 + 2 * np.sin(t / 7)
    pupil = PupilTracking(time_series=[
        TimeSeries(name="angle", data=angle, unit="radians", timestamps=eye_t),
        TimeSeries(name="pupil_area", data=area, unit="pixels^2", timestamps=eye_t)])
    eye = EyeTracking(spatial_series=SpatialSeries(
        name="eye_position", data=position, reference_frame="screen centre",
        unit="degrees", timestamps=eye_t))
    if layout == "dandi":
        behavior = nwb.create_processing_module("behavior", "behaviour")
        behavior.add(BehavioralTimeSeries(name="BehavioralTimeSeries", time_series=TimeSeries(
            name="running_speed", data=speed, unit="cm/s", rate=RATE)))
        behavior.add(pupil)
        behavior.add(eye)
    else:
        running = nwb.create_processing_module("running", "running speed")
        running.add(TimeSeries(name="speed_unfiltered", data=speed + 9, unit="cm/s", rate=RATE))
        running.add(TimeSeries(name="speed", data=speed, unit="cm/s", rate=RATE))
        nwb.add_acquisition(pupil)
        nwb.add_acquisition(eye)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return {"frames": frames, "onset": onset, "dff": dff, "t": t, "area_t": eye_t,
            "area": area, "position": position, "speed": speed, "pictures": pictures}


def window(t: np.ndarray, values: np.ndarray, a: float, b: float) -> np.ndarray:
    """The samples of a series within [a, b), which the loader averages."""
    return values[(t >= a) & (t < b)]


@pytest.mark.parametrize("layout", ["dandi", "allen"])
def test_a_lab_file_loads_valid_with_blanks_dropped_and_behaviour_by_name(tmp_path, layout):
    from pynwb import NWBHDF5IO, validate

    path = tmp_path / f"{layout}.nwb"
    truth = write_lab_nwb(path, layout=layout)
    with NWBHDF5IO(str(path), "r") as io:
        assert validate(io=io) == []  # a file pynwb itself calls valid
    scan = load_nwb(path)
    shown = truth["frames"] >= 0
    assert scan.n_trials == shown.sum() == 27 and scan.n_neurons == N_ROIS
    assert np.array_equal(scan.trial_image_ids, truth["frames"][shown])
    assert scan.neurons["unit_ids"].tolist() == list(range(100, 100 + N_ROIS))
    on = truth["onset"][shown]
    k = 3  # one presentation, checked against the written series
    assert_mean(scan.responses[k], window(truth["t"], truth["dff"], on[k], on[k] + 0.25), 0)
    # pupil size from pupil_area (≈1,400 px²), never from PupilTracking's angle (≈0.3)
    def shown(t: np.ndarray, values: np.ndarray) -> np.ndarray:
        return window(t, values, on[k], on[k] + 0.25)

    assert_mean(scan.behavior[k, 2], shown(truth["area_t"], truth["area"]), 0)
    assert_mean(scan.behavior[k, :2], shown(truth["area_t"], truth["position"]), 0)
    assert_mean(scan.behavior[k, 3], shown(truth["t"], truth["speed"]), 0)  # not unfiltered
    report = inspect_nwb(path)
    assert report.blank_dropped == 4 and report.presentations_total == 31
    assert report.presentations == "intervals/natural_scenes_presentations.frame"
    assert report.responses == "processing/ophys/DfOverF/traces"
    assert report.negative_responses  # dF/F: said before anything is fitted
    where = {"dandi": "processing/behavior", "allen": "acquisition"}[layout]
    assert report.behavior["pupil size"] == f"{where}/PupilTracking/pupil_area [pixels^2]"
    assert report.behavior["pupil position"] == f"{where}/EyeTracking/eye_position [degrees]"
    assert report.behavior["running speed"] == {
        "dandi": "processing/behavior/BehavioralTimeSeries/running_speed [cm/s]",
        "allen": "processing/running/speed [cm/s]"}[layout]
    assert report.repeats == {"oracle_images": 3, "min": 5, "max": 5}


def test_presentations_from_an_index_series_and_responses_told_apart_by_path(tmp_path):
    path = tmp_path / "s.nwb"
    truth = write_lab_nwb(path)
    by_index = load_nwb(path, intervals="natural_scenes_index")
    shown = truth["frames"] >= 0
    assert np.array_equal(by_index.trial_image_ids, truth["frames"][shown])
    # exact on purpose: the same pictures through the same path twice
    np.testing.assert_array_equal(by_index.images, load_nwb(path).images)
    with pytest.raises(RecordingError, match=r"more than one RoiResponseSeries matches "
                       r"'traces'; has \['processing/ophys/DfOverF/traces', "
                       r"'processing/ophys/Fluorescence/traces'\]"):
        load_nwb(path, responses="traces")
    raw = load_nwb(path, responses="Fluorescence/traces")
    assert inspect_nwb(path, responses="processing/ophys/Fluorescence/traces"
                       ).response_kind == "Fluorescence"
    assert raw.responses.min() > 0


def test_a_latency_offset_moves_the_response_window_onto_the_indicators_rise(tmp_path):
    path = tmp_path / "s.nwb"
    truth = write_lab_nwb(path)
    flat = load_nwb(path)  # [onset, onset + 0.25): before the rise
    late = load_nwb(path, response_offset=0.3, response_window=0.3)
    on = truth["onset"][truth["frames"] >= 0]
    assert_mean(late.responses[0], window(truth["t"], truth["dff"], on[0] + 0.3, on[0] + 0.6), 0)
    assert late.responses.mean() > 1 > abs(flat.responses.mean())
    with pytest.raises(RecordingError, match="response_window: must be > 0"):
        load_nwb(path, response_window=0)


def test_an_eye_tracking_dropout_is_named_then_filled_or_dropped(tmp_path):
    path = tmp_path / "s.nwb"
    truth = write_lab_nwb(path, dropout=(10.0, 13.0))  # 3 s without the eye
    on = truth["onset"]
    hit = [i for i, t in enumerate(on.tolist()) if 10.0 <= t and t + 0.25 <= 13.0]
    blanks_before = int((truth["frames"][:hit[0]] < 0).sum())
    with pytest.raises(RecordingError, match=(
            rf"processing/behavior/EyeTracking/eye_position: no samples within presentation "
            rf"{hit[0] - blanks_before} \(\[{on[hit[0]]:.3f}, .*image {truth['frames'][hit[0]]}"
            r".*behavior_gaps='fill'")):
        load_nwb(path)
    filled = inspect_nwb(path, behavior_gaps="fill")
    shown_hit = [i for i in hit if truth["frames"][i] >= 0]
    assert filled.gap_filled == len(shown_hit) and filled.trials == 27
    dropped = load_nwb(path, behavior_gaps="drop")
    assert dropped.n_trials == 27 - len(shown_hit)
    scan = load_nwb(path, behavior_gaps="fill")
    k = shown_hit[0] - blanks_before
    mid = on[shown_hit[0]] + 0.125  # interpolated across the gap: between its two edges
    lo, hi = np.interp(mid, truth["area_t"], truth["area"]), truth["area"]
    # np.interp's few roundings of values ≤ max |area|, then the float32 one
    assert_within(scan.behavior[k, 2], lo, one_path(5, np.abs(hi).max(), np.float32))
    assert hi.min() <= lo <= hi.max()


@pytest.mark.parametrize(("fit", "shape"), [("crop", (96, 128)), ("pad", (96, 128)),
                                            ("crop", (36, 128))])
def test_frames_of_another_aspect_ratio_are_cropped_or_padded_on_request(tmp_path, fit, shape):
    path = tmp_path / "s.nwb"
    truth = write_lab_nwb(path, shape=shape)
    with pytest.raises(RecordingError, match="frame_fit='crop'"):
        load_nwb(path)
    scan = load_nwb(path, frame_fit=fit)
    assert scan.images.shape[1:] == (1, 36, 64)
    picture = truth["pictures"][int(scan.image_ids[0])].astype(np.float64) / 255
    h, w = picture.shape
    if fit == "crop" and h * 64 > w * 36:  # the centred 9:16 rows, 2× down
        keep = w * 36 // 64
        top = (h - keep) // 2
        assert_mean(scan.images[0, 0], picture[top:top + keep].reshape(36, 2, 64, 2), (1, 3))
    if fit == "pad":  # the picture whole in the middle, grey bars either side
        assert scan.images[0, 0, :, 0].std() < picture.std()


def test_both_layouts_run_to_a_finished_similarity_run_with_the_importers_options(tmp_path):
    from ml.neural.pipeline import SimilarityConfig, run_similarity
    from ml.neural.predictor import PredictorConfig
    from ml.recorder import MemoryRecorder

    folder = tmp_path / "lab"
    folder.mkdir()
    write_lab_nwb(folder / "mouse1-dandi.nwb", layout="dandi", singles=60, seed=1)
    write_lab_nwb(folder / "mouse2-allen.nwb", layout="allen", singles=60, seed=2,
                  dropout=(20.0, 23.0))
    cfg = SimilarityConfig(source="recording", recording=str(folder), pairs_for_r=5000,
                           importer={"response_offset": 0.3, "response_window": 0.3,
                                     "behavior_gaps": "fill"},
                           predictor=PredictorConfig(hidden_channels=4, max_epochs=2,
                                                     batch_size=16))
    rec = MemoryRecorder()
    res = run_similarity(cfg, rec)
    assert [a.name for a in res.scans] == ["mouse1-dandi", "mouse2-allen"]
    assert np.isfinite(res.scores["r_model_oracle"]) and np.isfinite(res.scores["r_data_oracle"])
    assert len(res.targets["neural-model"]) == 60  # the images shown once, in both scans
    import io

    import torch

    def loss(rec: MemoryRecorder) -> str:
        return torch.load(io.BytesIO(rec.artifacts["predictor.pt"][0]), weights_only=True)[
            "loss"]

    assert loss(rec) == "poisson"  # on the indicator's rise every dF/F is > 0
    # over the flash itself dF/F is still at its (negative) baseline: a Gaussian fit
    onset = dataclasses.replace(cfg, importer=dataclasses.replace(
        cfg.importer, response_offset=0.0, response_window=None))
    rec = MemoryRecorder()
    assert np.isfinite(run_similarity(onset, rec).scores["r_data_oracle"])
    assert loss(rec) == "gaussian"
    with pytest.raises(RecordingError, match="eye_position: no samples within"):
        run_similarity(SimilarityConfig(source="recording", recording=str(folder),
                                        predictor=cfg.predictor), MemoryRecorder())
