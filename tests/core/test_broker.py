"""The embedded queue is first in, first out within a priority: across kombu's digit
boundary, across a restart, and with the clock set back; a message of a smaller priority
number goes first, on the embedded queue and on Redis alike (core/broker.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from celery import Celery
from kombu import Connection

from core.broker import WIDTH, adopt_legacy
from core.kinds import KINDS
from core.queue import make_celery
from core.settings import Settings


def _consume(app: Celery, transport: str | None = None) -> list[int]:
    """The run ids of every message on the ``gpu`` queue, in the order a worker gets
    them (``transport``: another transport class over the same folders)."""
    options = app.conf.broker_transport_options
    with Connection(app.conf.broker_url, transport=transport or app.conf.broker_transport,
                    transport_options=options) as conn:
        queue = conn.SimpleQueue("gpu")
        got = []
        while True:
            try:
                message = queue.get(timeout=0.5)
            except queue.Empty:
                return got
            got.append(message.payload[0][0])  # Celery's (args, kwargs, embed)
            message.ack()


def _queue_dir(settings: Settings) -> Path:
    return settings.broker_dir / "queue"


def test_kombus_names_across_the_digit_boundary_keep_their_order(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Two messages kombu queued at 999,990 and 1,000,010 ms of uptime, still waiting
    when neuroreg is upgraded: the older one goes first (kombu itself takes the newer)."""
    settings = make_settings()
    app = make_celery(settings)
    folder = _queue_dir(settings)
    for ms, run_id in ((999_990, 1), (1_000_010, 2)):
        app.send_task("neuroreg.train", args=[run_id], queue="gpu")
        (sent,) = [p for p in folder.iterdir() if p.name.endswith(".msg")
                   and p.name.startswith("0-")]
        sent.rename(folder / f"{ms}_{sent.name.split('_', 1)[1]}")  # as kombu 5.7 names it
    copy = tmp_path / "kombu-copy"
    shutil.copytree(folder, copy)

    kombu_own = Celery(broker="filesystem://")
    kombu_own.conf.broker_transport_options = {"data_folder_in": str(copy),
                                               "data_folder_out": str(copy),
                                               "control_folder": str(tmp_path / "control")}
    assert _consume(kombu_own, "filesystem") == [2, 1]  # the bug, in kombu's transport

    app.send_task("neuroreg.train", args=[3], queue="gpu")  # queued after the upgrade
    assert _consume(app) == [1, 2, 3]
    assert adopt_legacy(str(folder)) == 0  # renamed once


def test_order_survives_a_restart_and_a_clock_set_back(
    make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    before = make_celery(settings)
    for run_id in (1, 2):
        before.send_task("neuroreg.train", args=[run_id], queue="gpu")
    folder = _queue_dir(settings)
    # the last number issued lies an hour ahead of the clock: as after the clock was set
    # back an hour (or a reboot with a clock that runs behind)
    (folder / ".sequence").write_text(str(int((folder / ".sequence").read_text())
                                          + 3600 * 10**9))
    after = make_celery(settings)  # a restarted service
    for run_id in (3, 4):
        after.send_task("neuroreg.train", args=[run_id], queue="gpu")
    names = sorted(n for n in os.listdir(folder) if n.endswith(".msg"))
    assert all(len(n.split("_")[0]) == len("0-") + WIDTH for n in names)
    assert _consume(after) == [1, 2, 3, 4]


def test_no_reader_sees_a_message_being_written(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    folder = _queue_dir(settings)
    make_celery(settings)
    (folder / f".{'0' * WIDTH}_x.gpu.msg.part").write_bytes(b'{"half')  # a write under way
    app = make_celery(settings)
    app.send_task("neuroreg.train", args=[7], queue="gpu")
    assert _consume(app) == [7]


def _send_runs(app: Celery) -> None:
    """Train runs 1 and 2, then the evaluation 3 of a model that just finished, then a
    similarity run 4 and a study 5, each at its kind's priority, as core.submit sends
    them."""
    for run_id, kind in ((1, "train"), (2, "train"), (3, "evaluate"), (4, "similarity"),
                         (5, "study")):
        job = KINDS[kind]
        app.send_task(job.task, args=[run_id], queue="gpu", priority=job.priority)


def test_an_evaluation_goes_ahead_of_trains_queued_before_it(
    make_settings: Callable[..., Settings]
) -> None:
    app = make_celery(make_settings())
    _send_runs(app)
    assert _consume(app) == [5, 3, 1, 2, 4]


def test_redis_orders_by_the_same_priorities(
    make_settings: Callable[..., Settings], redis_url: str
) -> None:
    app = make_celery(make_settings(broker_url=redis_url))
    _send_runs(app)
    assert _consume(app) == [5, 3, 1, 2, 4]


def test_messages_named_before_priorities_keep_their_own(
    make_settings: Callable[..., Settings]
) -> None:
    """An evaluation and a train queued under the unprefixed names of the previous version
    are renamed with the priority their properties hold: the evaluation first."""
    settings = make_settings()
    app = make_celery(settings)
    folder = _queue_dir(settings)
    for number, (run_id, kind) in enumerate(((1, "train"), (2, "evaluate")), start=10):
        job = KINDS[kind]
        app.send_task(job.task, args=[run_id], queue="gpu", priority=job.priority)
        (sent,) = [p for p in folder.iterdir() if p.name.endswith(".msg") and "-" in p.name[:2]]
        sent.rename(folder / f"{number:0{WIDTH}d}_{sent.name.split('_', 1)[1]}")
    assert adopt_legacy(str(folder)) == 2
    assert sorted(n[:2] for n in os.listdir(folder) if n.endswith(".msg")) == ["3-", "6-"]
    assert _consume(app) == [2, 1]
