"""The embedded queue: send and receive rate of neuroreg's FIFO transport (core/broker.py)
against kombu's own filesystem transport, side by side on the same kind of folder, and
whether each hands messages out in the order they were sent.

    .venv/bin/python bench/embedded_queue.py [--messages 2000]

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kombu import Connection

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TRANSPORTS = {"neuroreg (core.broker)": "core.broker:Transport",
              "kombu filesystem": "filesystem"}


def measure(transport: str, n: int) -> dict[str, float | bool]:
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as control:
        options = {"data_folder_in": folder, "data_folder_out": folder,
                   "control_folder": control}
        with Connection("filesystem://", transport=transport,
                        transport_options=options) as conn:
            queue = conn.SimpleQueue("gpu")
            t0 = time.perf_counter()
            for i in range(n):
                queue.put({"run_id": i})
            sent = time.perf_counter() - t0
            got = []
            t0 = time.perf_counter()
            for _ in range(n):
                message = queue.get(timeout=5)
                got.append(message.payload["run_id"])
                message.ack()
            received = time.perf_counter() - t0
    return {"send_per_s": n / sent, "receive_per_s": n / received,
            "in_order": got == list(range(n))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # measure this transport, print JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.messages)))
        return
    # each transport in a process of its own: kombu keeps state per process (a second
    # Connection in one process over new folders routed nothing)
    rows = {name: json.loads(subprocess.run(
        [sys.executable, __file__, "--one", t, "--messages", str(args.messages)],
        check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        for name, t in TRANSPORTS.items()}
    print(f"{args.messages} messages, one process (a worker takes one at a time)")
    print(f"{'transport':<26} {'send/s':>8} {'receive/s':>10}  in order")
    for name, r in rows.items():
        print(f"{name:<26} {r['send_per_s']:>8.0f} {r['receive_per_s']:>10.0f}  {r['in_order']}")
    ours, theirs = rows["neuroreg (core.broker)"], rows["kombu filesystem"]
    ratios = {"send": ours["send_per_s"] / theirs["send_per_s"],
              "receive": ours["receive_per_s"] / theirs["receive_per_s"]}
    print(f"ours / kombu's: send {ratios['send']:.2f}×, receive {ratios['receive']:.2f}×")
    print(json.dumps({"bench": "queue", "messages": args.messages, "transports": rows,
                      "ratio_send": round(ratios["send"], 3),
                      "ratio_receive": round(ratios["receive"], 3)}))


if __name__ == "__main__":
    main()
