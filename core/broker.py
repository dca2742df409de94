"""The embedded broker: kombu's filesystem transport, first in, first out across restarts.

kombu 5.7's filesystem transport names each message ``<monotonic ms>_<uuid>.<queue>.msg``
and takes the lexicographically smallest name. Past 1,000,000 ms of uptime a new
7-digit name sorts before older 6-digit ones (an evaluation queued later ran before five
queued earlier), and after a reboot the clock restarts below the names still queued. It
also writes a message in place, so a worker could take a file before it was complete.

This transport keeps kombu's (its reading, acking and polling are unchanged) and names
messages by a sequence number of fixed width: the wall clock in nanoseconds, or one
more than the last number any process on this queue folder issued (kept in
``.sequence`` under a file lock), whichever is larger — so numbers only grow, across
processes, restarts and a clock set back. A message is written under a hidden name and
renamed into place whole. Messages queued under kombu's names before this transport
are renamed, once, to the same width (their order among themselves kept), so they stay
ahead of newer ones.

Messages carry a priority, as on Redis (Celery's convention there: 0 first, 9 last; a
message sent without one is 0): a name starts with its priority digit, ``<p>-<sequence>``,
so a reader taking the smallest name takes the most urgent message, first in first out
among equals (:data:`core.kinds.JobKind.priority`: an evaluation goes ahead of a train
queued before it). Messages named before priorities (both kombu's names and this
transport's earlier unprefixed ones) are renamed once with the priority their own
properties hold.

Used when ``NEUROREG_BROKER_URL`` is the embedded default (``filesystem://``):
:func:`core.queue.celery_config` sets ``broker_transport`` to this module's Transport.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
import uuid
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps, loads

from core.settings import owner_only

WIDTH = 20  # digits of a sequence number: time_ns() has 19 until the year 2286
SEQUENCE_FILE = ".sequence"
# kombu's own names, and this transport's before priorities (WIDTH digits)
_LEGACY = re.compile(r"^(\d{1,20})_([^.]+\.[^/]+\.msg)$")
PRIORITIES = range(10)


def priority_of(payload: Any) -> int:
    """A message's priority, 0 (first) to 9, from its properties; 0 without one (as
    kombu's Redis transport reads it)."""
    try:
        value = int(payload["properties"]["priority"])
    except (KeyError, TypeError, ValueError):
        return 0
    return min(max(value, PRIORITIES[0]), PRIORITIES[-1])


def message_name(priority: int, sequence: int, rest: str) -> str:
    """``<priority>-<sequence, WIDTH digits>_<rest>``: sorted names are the reading order."""
    return f"{priority}-{sequence:0{WIDTH}d}_{rest}"


def _private(path: str, flags: int) -> int:
    """``open``'s opener for a file only this user may read (a message carries a run's
    config), whatever the umask."""
    return os.open(path, flags, 0o600)


def next_sequence(folder: str) -> int:
    """A number larger than any issued before for ``folder`` (by any process)."""
    with open(os.path.join(folder, SEQUENCE_FILE), "a+b", opener=_private) as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        text = f.read().strip()
        last = int(text) if text.isdigit() else 0
        number = max(time.time_ns(), last + 1)
        f.seek(0)
        f.truncate()
        f.write(str(number).encode())
        return number  # the lock goes with the file's close


def adopt_legacy(folder: str) -> int:
    """Rename messages named before priorities (kombu's names, and this transport's
    earlier unprefixed ones) to ``<priority>-<sequence>`` names, the priority read from
    each message: their own order kept, ahead of every newer message of their priority.
    Returns how many."""
    renamed = 0
    for name in os.listdir(folder):
        m = _LEGACY.match(name)
        if m is None:
            continue
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as f:
                priority = priority_of(loads(f.read()))  # type: ignore[no-untyped-call]
        except FileNotFoundError:  # another process took it first
            continue
        except ValueError:  # not a message we can read: its worker will say so
            priority = 0
        with contextlib.suppress(FileNotFoundError):
            os.rename(path, os.path.join(folder, message_name(priority, int(m.group(1)),
                                                              m.group(2))))
            renamed += 1
    return renamed


class Channel(filesystem.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        adopt_legacy(self.data_folder_in)

    def _queue_bind(self, exchange: str, *args: Any) -> None:
        """Bind as kombu does, then make the exchange's file private: kombu opens it
        with the umask's mode."""
        super()._queue_bind(exchange, *args)  # type: ignore[no-untyped-call]
        owner_only(self._exchange_file(exchange))  # type: ignore[no-untyped-call]

    # kombu's filesystem Channel names the argument ``payload``, its AbstractChannel
    # ``message``: no signature satisfies both, so this keeps the filesystem one's
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        folder = self.data_folder_out
        name = message_name(priority_of(payload), next_sequence(folder),
                            f"{uuid.uuid4()}.{queue}.msg")
        hidden = os.path.join(folder, f".{name}.part")  # no reader matches it
        try:
            with open(hidden, "wb", opener=_private) as f:
                # kombu's JSON (its encoder takes what Celery's headers may hold)
                f.write(dumps(payload).encode())  # type: ignore[no-untyped-call]
            os.replace(hidden, os.path.join(folder, name))  # whole, or not at all
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(hidden)
            raise ChannelError(f"Cannot add {name!r} to {folder}") from exc


class Transport(filesystem.Transport):
    Channel = Channel
