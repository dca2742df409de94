"""What ran a run: its code's git commit and dirty flag, the installed packages, Python,
host, platform, torch and GPUs. One home: the worker records it for the runs it starts
(of the checkout its ``server``/``ml`` packages live in), the client for an external
run's script (of ``sys.argv[0]``'s checkout), and the server diffs it between runs.

Git is asked through the ``git`` command with a timeout; no git, no checkout (an
installed package) or a git that refuses: the git fields are null, never an error.
``dirty`` counts changes to tracked files (staged or not); untracked files (data,
outputs) do not make a checkout dirty.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

GIT_TIMEOUT_S = 5.0
FIELDS = ("git_commit", "git_dirty", "git_branch", "git_root", "neuroreg_version", "python",
          "host", "platform", "torch", "cuda", "gpus", "script")
"""The provenance fields besides ``packages``, in the order pages show them."""


def _git(cwd: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True,
                             timeout=GIT_TIMEOUT_S, check=False,
                             env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError):  # no git, or it hung
        return None
    return out.stdout if out.returncode == 0 else None


def git_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``git_commit``, ``git_dirty``, ``git_branch`` (None when detached) and ``git_root``
    of the checkout ``path`` is in; all None when it is in none (or inside an installed
    package's site-packages, which a checkout may hold: that code is not the checkout's)."""
    none: dict[str, Any] = {"git_commit": None, "git_dirty": None, "git_branch": None,
                            "git_root": None}
    p = Path(path).resolve()
    cwd = p if p.is_dir() else p.parent
    if any(part in ("site-packages", "dist-packages") for part in cwd.parts):
        return none
    top = _git(cwd, "rev-parse", "--show-toplevel", "HEAD")
    if top is None:
        return none
    lines = top.splitlines()
    if len(lines) != 2:
        return none
    root, commit = lines
    branch = (_git(cwd, "rev-parse", "--abbrev-ref", "HEAD") or "").strip()
    status = _git(cwd, "status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status.strip()),
            "git_branch": None if branch in ("", "HEAD") else branch, "git_root": root}


def packages() -> dict[str, str]:
    """Every installed distribution and its version, by normalized name."""
    out: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name") if dist.metadata else None  # type: ignore[attr-defined]
        if name:
            out.setdefault(name.lower().replace("_", "-"), dist.version)
    return dict(sorted(out.items()))


def _torch(import_torch: bool) -> dict[str, Any]:
    """torch's version, its CUDA's and the names of the GPUs it sees. Without
    ``import_torch`` a torch the caller has not imported is only read from its metadata
    (a script that never used torch pays no second of import for it)."""
    torch = sys.modules.get("torch")
    if torch is None and import_torch:
        try:
            import torch
        except Exception:  # noqa: BLE001 — no torch, or a broken one
            torch = None
    if torch is None:
        try:
            return {"torch": metadata.version("torch"), "cuda": None, "gpus": []}
        except metadata.PackageNotFoundError:
            return {"torch": None, "cuda": None, "gpus": []}
    gpus: list[str] = []
    try:
        if torch.cuda.is_available():
            gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 — a driver that refuses: no GPU names
        gpus = []
    return {"torch": str(torch.__version__), "cuda": torch.version.cuda, "gpus": gpus}


def _version() -> str | None:
    try:
        return metadata.version("neuroreg")
    except metadata.PackageNotFoundError:
        return None


def collect(code: str | os.PathLike[str] | None, *, import_torch: bool = False,
            script: str | None = None) -> dict[str, Any]:
    """The provenance of code at ``code`` (a file or folder; None: no git fields) run by
    this process. ``script``: the script's path, recorded as given.

    Returns:
        ``git_commit``, ``git_dirty``, ``git_branch``, ``git_root``, ``neuroreg_version``,
        ``python``, ``host``, ``platform``, ``torch``, ``cuda``, ``gpus`` (names),
        ``script`` and ``packages`` ({name: version}).
    """
    git = git_state(code) if code is not None else {k: None for k in FIELDS[:4]}
    return {**git, "neuroreg_version": _version(), "python": platform.python_version(),
            "host": socket.gethostname(), "platform": platform.platform(),
            **_torch(import_torch), "script": script, "packages": packages()}


def of_script() -> dict[str, Any]:
    """The provenance of the calling script: git of ``sys.argv[0]``'s folder (the working
    folder in a notebook or ``python -c``), its packages, host and GPUs."""
    argv0 = sys.argv[0] if sys.argv else ""
    path = Path(argv0) if argv0 and argv0 not in ("-c", "-m") and Path(argv0).is_file() else None
    return collect(path if path is not None else Path.cwd(),
                   script=str(path.resolve()) if path is not None else None)


def diff(provenances: list[dict[str, Any] | None]) -> dict[str, Any]:
    """The fields that differ between runs' provenances (None: a run without one).

    Returns:
        ``fields``: ``[{"field", "values"}]`` for each of :data:`FIELDS` whose values are
        not all equal (a value per run, None where a run lacks it), and ``packages``:
        ``[{"name", "versions"}]`` for each package whose version differs (None: not
        installed there), by name; ``same``: how many fields and packages are equal.
        Runs without provenance take no part (their values are all None and count as
        neither).
    """
    have = [p for p in provenances if p is not None]
    fields, same_fields = [], 0
    for f in FIELDS:
        values = [p.get(f) if p is not None else None for p in provenances]
        if len({repr(p.get(f)) for p in have}) > 1:
            fields.append({"field": f, "values": values})
        elif have:
            same_fields += 1
    names = sorted({n for p in have for n in (p.get("packages") or {})})
    pkgs, same_pkgs = [], 0
    for n in names:
        versions = [(p.get("packages") or {}).get(n) if p is not None else None
                    for p in provenances]
        if len({(p.get("packages") or {}).get(n) for p in have}) > 1:
            pkgs.append({"name": n, "versions": versions})
        else:
            same_pkgs += 1
    return {"fields": fields, "packages": pkgs,
            "same": {"fields": same_fields, "packages": same_pkgs}}
