"""What the CLI prints of other people's text (log lines, run names, errors, URLs) reaches
a terminal as text, never as commands to it.

An escape sequence in a member's log line or run name can move the cursor and rewrite
what was printed, set the window title, make hyperlinks, or write the clipboard (OSC 52);
a carriage return overwrites a line; bidirectional overrides reorder what is shown. On a
terminal each such character is printed as its escape (``\\x1b``, ``\\r``, ``\\u202e``);
tabs and newlines stay. Into a file or a pipe the text goes as it is (``neuroreg logs 7 >
out.txt`` keeps the job's bytes).
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0),  # C0, DEL, C1 (0x9b: CSI)
             0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]  # bidi
_SHOWN = {c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _CONTROLS
          if chr(c) not in "\t\n"}


def shown(text: str) -> str:
    """``text`` with every control character but tab and newline written as its escape."""
    return text.translate(_SHOWN)


def say(text: str, file: TextIO | None = None, **kwargs: Any) -> None:
    """``print(text)``, through :func:`shown` when ``file`` (stdout by default) is a
    terminal."""
    out = file if file is not None else sys.stdout
    isatty = getattr(out, "isatty", None)
    print(shown(text) if isatty is not None and isatty() else text, file=out, **kwargs)
