"""The embedded queue is first in, first out: across kombu's digit boundary, across a
restart, and with the clock set back (core/broker.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from celery import Celery
from kombu import Connection

from core.broker import WIDTH, adopt_legacy
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
                   and len(p.name.split("_")[0]) == WIDTH]
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
    assert all(len(n.split("_")[0]) == WIDTH for n in names)
    assert _consume(after) == [1, 2, 3, 4]


def test_no_reader_sees_a_message_being_written(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    folder = _queue_dir(settings)
    make_celery(settings)
    (folder / f".{'0' * WIDTH}_x.gpu.msg.part").write_bytes(b'{"half')  # a write under way
    app = make_celery(settings)
    app.send_task("neuroreg.train", args=[7], queue="gpu")
    assert _consume(app) == [7]
