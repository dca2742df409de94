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
from kombu.utils.json import dumps

from core.settings import owner_only

WIDTH = 20  # digits of a sequence number: time_ns() has 19 until the year 2286
SEQUENCE_FILE = ".sequence"
_LEGACY = re.compile(r"^(\d{1,19})_([^.]+\.[^/]+\.msg)$")  # kombu's own names


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
    """Rename kombu-named messages in ``folder`` to this transport's width (zero-padded:
    ahead of every new name, their own order kept); returns how many."""
    renamed = 0
    for name in os.listdir(folder):
        m = _LEGACY.match(name)
        if m is None or len(m.group(1)) == WIDTH:
            continue
        with contextlib.suppress(FileNotFoundError):  # another process took it first
            os.rename(os.path.join(folder, name),
                      os.path.join(folder, f"{int(m.group(1)):0{WIDTH}d}_{m.group(2)}"))
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
        name = f"{next_sequence(folder):0{WIDTH}d}_{uuid.uuid4()}.{queue}.msg"
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
