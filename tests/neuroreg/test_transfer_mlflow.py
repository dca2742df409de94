"""What an MLflow series becomes in neuroreg (one value per step) and what is said."""

from __future__ import annotations

from typing import Any

from neuroreg.transfer_mlflow import MlflowSource, _Run

RUN = _Run(run_id="r" * 32, experiment_id="1", experiment="e", status="FINISHED",
           start_time=0, end_time=1, deleted=False, user="u", run_name="n", params={},
           tags={}, artifact_uri="")


class _Series(MlflowSource):
    uri = "memory:"

    def __init__(self, history: dict[str, list[tuple[int, float, int]]]) -> None:
        self._history = history

    def history(self, run: Any) -> dict[str, list[tuple[int, float, int]]]:
        return self._history


HISTORY = {
    # logged without step=: every point at step 0, in time order 30, 10, 20
    "loss": [(30, 0.3, 0), (10, 0.1, 0), (20, 0.2, 0)],
    "acc": [(5, 0.5, 1), (6, float("inf"), 2), (7, 0.7, -1), (8, 0.8, 2**31)],
    "bad key": [(1, 1.0, 0)],
}


def test_a_repeated_step_keeps_the_latest_value_or_becomes_a_sequence() -> None:
    notes: list[str] = []
    last = _Series(HISTORY)._points(RUN, "last", notes)
    assert [p for p in last if p[0] == "loss"] == [("loss", 0, 0.3, 0.03)]
    assert any("'loss': 2 values at a step" in n for n in notes)
    notes = []
    seq = _Series(HISTORY)._points(RUN, "sequence", notes)
    # each point's place in time order is its step
    assert [p for p in seq if p[0] == "loss"] == [("loss", 0, 0.1, 0.01), ("loss", 1, 0.2, 0.02),
                                                  ("loss", 2, 0.3, 0.03)]
    assert any("--repeated-steps sequence" in n for n in notes)


def test_what_neuroreg_cannot_keep_is_skipped_and_said() -> None:
    notes: list[str] = []
    points = _Series(HISTORY)._points(RUN, "last", notes)
    assert [p for p in points if p[0] == "acc"] == [("acc", 1, 0.5, 0.005)]
    assert not [p for p in points if p[0] == "bad key"]
    said = " | ".join(notes)
    assert "'acc': 1 point that is not finite skipped" in said
    assert "'acc': 2 points at a step outside 0…2³¹−1 skipped" in said
    assert "'bad key' skipped (1 point)" in said
