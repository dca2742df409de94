"""The client's settings: which server, which token, offline or not, and where the spool is.

The same ``NEUROREG_*`` variables, defaults and precedence as the service's
:class:`core.settings.Settings` (``api_url``, ``host``, ``port``, ``token``, ``offline``,
``spool_dir``, ``data_dir``, the admin-token file), read without pydantic or the service
code, so a script's ``Client()`` and ``neuroreg runs`` start in the time Python does.
A test (tests/neuroreg/test_settings.py) holds the two to the same answers.

Which admin token a client without ``NEUROREG_TOKEN`` uses: ``neuroreg up`` records, while
it runs, the URL it serves and its data directory in a per-user state file
(:func:`servers_file`: ``$XDG_STATE_HOME/neuroreg/servers.json``, default
``~/.local/state/neuroreg/servers.json``; paths only, never a token). A client that names
no data directory (no ``NEUROREG_DATA_DIR`` or ``--data-dir``) reads the admin token of the
data directory recorded for the URL it talks to, if that ``up`` is still running; else the
token file of its own data directory. So after ``neuroreg up --data-dir DIR``, a plain
``neuroreg runs`` on the same machine finds DIR's token.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

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


_LOOPBACK = {"", "127.0.0.1", "localhost", "0.0.0.0", "::1", "::"}  # hosts of this machine


def server_key(url: str) -> str:
    """``url``'s server as the state file keys it: scheme, host and port, any loopback
    or unspecified host (``0.0.0.0``, ``localhost``) as ``127.0.0.1``, the scheme's port
    when none is given."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = (parts.hostname or "").lower()
    host = "127.0.0.1" if host in _LOOPBACK else host
    scheme = parts.scheme or "http"
    return f"{scheme}://{host}:{port or (443 if scheme == 'https' else 80)}"


def servers_file(environ: Mapping[str, str] | None = None) -> Path:
    """The per-user state file where ``neuroreg up`` records the servers it runs."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or Path(env.get("HOME") or Path.home()) / ".local" / "state"
    return Path(base) / "neuroreg" / "servers.json"


def _servers(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def _write_servers(path: Path, servers: dict[str, Any]) -> None:
    """Replace the state file (mode 600, in a folder only its user may enter)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(servers, fh, indent=1)
    tmp.replace(path)


def record_server(url: str, data_dir: Path, pid: int, path: Path | None = None) -> None:
    """``neuroreg up``'s process ``pid`` serves ``url`` from ``data_dir`` (entries of
    processes that have ended are dropped)."""
    path = path or servers_file()
    servers = {k: v for k, v in _servers(path).items()
               if isinstance(v, dict) and _alive(v.get("pid"))}
    servers[server_key(url)] = {"data_dir": str(Path(data_dir).resolve()), "pid": pid}
    _write_servers(path, servers)


def forget_server(url: str, pid: int, path: Path | None = None) -> None:
    """``neuroreg up`` ends: its entry goes (one another process wrote since stays)."""
    path = path or servers_file()
    servers = _servers(path)
    entry = servers.get(server_key(url))
    if isinstance(entry, dict) and entry.get("pid") == pid:
        del servers[server_key(url)]
        with contextlib.suppress(OSError):
            _write_servers(path, servers)


def recorded_data_dir(url: str, path: Path | None = None) -> Path | None:
    """The data directory of the running ``neuroreg up`` that serves ``url``, or None."""
    entry = _servers(path or servers_file()).get(server_key(url))
    if not isinstance(entry, dict) or not isinstance(entry.get("data_dir"), str):
        return None
    return Path(entry["data_dir"]) if _alive(entry.get("pid")) else None


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
    data_dir_given: bool = False  # NEUROREG_DATA_DIR (or --data-dir) named it
    servers: Path | None = None  # the state file (:func:`servers_file`)

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
                   spool_dir=Path(env["spool_dir"]) if "spool_dir" in env else None,
                   data_dir_given="data_dir" in env,
                   servers=servers_file(os.environ if environ is None else environ))

    @property
    def url(self) -> str:
        return self.api_url or f"http://{self.host}:{self.port}"

    @property
    def spool(self) -> Path:
        return (self.spool_dir or self.data_dir / "spool").resolve()

    @property
    def token_file(self) -> Path:
        return self.data_dir / "admin-token"

    def admin_token_file(self) -> Path:
        """The admin token file a client without a token reads: that of the data
        directory a running ``neuroreg up`` recorded for :attr:`url`, unless a data
        directory was named; else :attr:`token_file`."""
        return admin_token_file(self.url, self.data_dir, self.data_dir_given, self.servers)

    def api_token(self) -> str:
        """``NEUROREG_TOKEN``, else this machine's admin token file (``neuroreg up``
        writes it; :meth:`admin_token_file`), else ``""``."""
        if self.token:
            return self.token
        path = self.admin_token_file()
        return path.read_text().strip() if path.exists() else ""


def admin_token_file(url: str, data_dir: Path, data_dir_given: bool,
                     servers: Path | None = None) -> Path:
    """The admin token file for a client of ``url`` whose settings give ``data_dir``
    (named, or the default): see the module's note."""
    if not data_dir_given:
        recorded = recorded_data_dir(url, servers)
        if recorded is not None and (recorded / "admin-token").exists():
            return recorded / "admin-token"
    return data_dir / "admin-token"
