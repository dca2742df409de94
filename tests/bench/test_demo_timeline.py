"""bench/demo_timeline.py reads the demo's events from the API as the dashboard shows
them: the first paired row only once None and Neural (model) of one seed are evaluated."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_demo_timeline",
                                                  ROOT / "bench" / "demo_timeline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _client(runs: list[dict[str, Any]]) -> httpx.Client:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/runs":
            return httpx.Response(200, json={"items": runs, "total": len(runs)})
        return httpx.Response(200, json=["loss"])  # the demo train's metric keys
    return httpx.Client(base_url="http://demo", transport=httpx.MockTransport(answer))


def _run(id_: int, name: str, kind: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"id": id_, "name": name, "kind": kind, "status": status, "parent_id": None,
            "input_run_id": None, "config": {}, **extra}


def test_the_first_pair_needs_both_conditions_of_one_seed_evaluated() -> None:
    bench = _bench()
    runs = [_run(1, bench.DEMO_TRAIN, "train", "running"),
            _run(2, bench.DEMO_SIMILARITY, "similarity", "succeeded"),
            _run(3, bench.DEMO_STUDY, "study", "running"),
            _run(4, "none 0", "train", "succeeded", parent_id=3,
                 config={"target": "none", "seed": 0}),
            _run(5, "neural 1", "train", "succeeded", parent_id=3,
                 config={"target": "neural-model", "seed": 1}),
            _run(6, "none 0: evaluate", "evaluate", "succeeded", parent_id=3, input_run_id=4),
            _run(7, "neural 1: evaluate", "evaluate", "succeeded", parent_id=3, input_run_id=5)]
    seen: dict[str, float] = {}
    with _client(runs) as http:
        bench.observe(http, seen, 1.0)
    assert set(seen) == {"first chart", "similarity", "study", "first eval"}  # seeds differ
    runs += [_run(8, "neural 0", "train", "succeeded", parent_id=3,
                  config={"target": "neural-model", "seed": 0}),
             _run(9, "neural 0: evaluate", "evaluate", "succeeded", parent_id=3,
                  input_run_id=8)]
    with _client(runs) as http:
        bench.observe(http, seen, 2.0)
    assert seen["first pair"] == 2.0 and seen["first eval"] == 1.0 and "done" not in seen
