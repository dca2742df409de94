"""CSV cells a spreadsheet shows as written: text that would start a formula gets a
leading ``'`` (OWASP's CSV injection advice), numbers stay numbers.

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to
Excel, LibreOffice and Google Sheets (``=HYPERLINK(…)``, ``-2+3``, ``@SUM(…)``), and a run
name or a config value is a member's text. Text that is just a number (``-0.5``) is left
as it is: a spreadsheet reads it as that number. The quote is added to text of the form
``'*<one of those>`` only, so a reader strips exactly one quote from text of the form
``'+<one of those>`` and gets the text back (``neuroreg.client`` does; the figures' CSV
button writes cells by the same rule).
"""

from __future__ import annotations

import re
from typing import Any

FORMULA = re.compile(r"^'*[=+\-@\t\r]")
"""Text a spreadsheet would run, or that reads as quoted such text (the quote added)."""
NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def cell(value: Any) -> Any:
    """``value`` as a CSV cell: text of the form :data:`FORMULA` (and not a plain number)
    with one more leading ``'``; numbers, booleans and None as they are."""
    if isinstance(value, str) and FORMULA.match(value) and not NUMBER.match(value):
        return "'" + value
    return value
