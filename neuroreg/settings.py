"""The client's settings: which server, which token, offline or not, and where the spool is.

The same ``NEUROREG_*`` variables, defaults and precedence as the service's
:class:`core.settings.Settings` (``api_url``, ``host``, ``port``, ``token``, ``offline``,
``spool_dir``, ``data_dir``, the admin-token file), read without pydantic or the service
code, so a script's ``Client()`` and ``neuroreg runs`` start in the time Python does.
A test (tests/neuroreg/test_settings.py) holds the two to the same answers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

_TRUE = {"1", "on", "t", "true", "y", "yes"}  # what pydantic reads as a bool
_FALSE = {"0", "off", "f", "false", "n", "no"}


def _env(environ: Mapping[str, str]) -> dict[str, str]:
    """``NEUROREG_*`` by lower-case field name: like pydantic-settings, the variables'
    case does not matter."""
    return {k.lower().removeprefix("neuroreg_"): v for k, v in environ.items()
            if k.lower().startswith("neuroreg_")}


def _offline(value: str) -> bool | Literal["auto"]:
    if value == "auto":  # as pydantic reads it: "auto" exactly, a bool in any case
        return "auto"
    if value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise ValueError(f"NEUROREG_OFFLINE: {value!r} is not false, true or auto")


def _port(value: str) -> int:
    try:  # as pydantic reads an int: spaces around it, 8_000 and 8000.0 are fine
        number = float(value)
    except ValueError:
        number = math.nan
    if not number.is_integer():
        raise ValueError(f"NEUROREG_PORT: {value!r} is not a whole number")
    port = int(number)
    if not 1 <= port <= 65535:
        raise ValueError(f"NEUROREG_PORT: {port} is not between 1 and 65535")
    return port


@dataclass(frozen=True)
class ClientSettings:
    """What a client needs of a deployment's settings; :meth:`from_env` reads them."""

    data_dir: Path
    api_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    token: str = ""
    offline: bool | Literal["auto"] = False
    spool_dir: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClientSettings:
        """The settings ``environ`` (default ``os.environ``) gives; ValueError naming the
        variable when one cannot be read."""
        env = _env(os.environ if environ is None else environ)
        base = (os.environ if environ is None else environ).get("XDG_DATA_HOME")
        data_dir = Path(env["data_dir"]) if "data_dir" in env else (
            Path(base or Path.home() / ".local" / "share") / "neuroreg")
        return cls(data_dir=data_dir, api_url=env.get("api_url", ""),
                   host=env.get("host", "127.0.0.1"),
                   port=_port(env["port"]) if "port" in env else 8000,
                   token=env.get("token", ""),
                   offline=_offline(env["offline"]) if "offline" in env else False,
                   spool_dir=Path(env["spool_dir"]) if "spool_dir" in env else None)

    @property
    def url(self) -> str:
        return self.api_url or f"http://{self.host}:{self.port}"

    @property
    def spool(self) -> Path:
        return (self.spool_dir or self.data_dir / "spool").resolve()

    @property
    def token_file(self) -> Path:
        return self.data_dir / "admin-token"

    def api_token(self) -> str:
        """``NEUROREG_TOKEN``, else this machine's admin token file (``neuroreg up``
        writes it), else ``""``."""
        if self.token:
            return self.token
        return self.token_file.read_text().strip() if self.token_file.exists() else ""
