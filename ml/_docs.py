"""What each field of a config means, read from its class docstring's ``Attributes:``
section (Google style), so the help a form or the API schema shows has one source: the
config's own documentation."""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from typing import Any


def field_docs(cls: type) -> dict[str, str]:
    """``{field: description}`` from ``cls``' docstring's ``Attributes:`` section (a
    description's continuation lines are indented deeper than its name)."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    lines = doc.splitlines()
    if "Attributes:" not in lines:
        return {}
    out: dict[str, str] = {}
    name, indent = None, None
    for line in lines[lines.index("Attributes:") + 1:]:
        if line.strip() and not line.startswith(" "):
            break  # the next section
        m = re.match(r"^( +)(\w+): (.*)$", line)
        if m and (indent is None or len(m.group(1)) == indent):
            indent, name = len(m.group(1)), m.group(2)
            out[name] = m.group(3).strip()
        elif name and line.strip():
            out[name] += " " + line.strip()
    fields = ({f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls)
              else set(out))
    return {k: plain(v) for k, v in out.items() if k in fields}


def plain(text: str) -> str:
    """reStructuredText markup as a reader sees it: ``code`` and :role:`target` as text."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text)
    return re.sub(r"``([^`]+)``", r"\1", text)


def config_classes(*roots: type) -> dict[str, type]:
    """Every dataclass reachable from ``roots`` through their fields' types, by name."""
    found: dict[str, type] = {}

    def walk(tp: Any) -> None:
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            if tp.__name__ in found:
                return
            found[tp.__name__] = tp
            for hint in typing.get_type_hints(tp).values():
                walk(hint)
        for arg in typing.get_args(tp):
            walk(arg)

    for root in roots:
        walk(root)
    return found
