"""The README and every docs/ page are true: their concrete ``neuroreg`` commands parse
and name files that exist, the files they link exist, and their Python blocks that need no
server run as written (the client block of docs/runs.md runs against a live server in
tests/integration/test_examples.py)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from cli import build_parser
from tests.floats import assert_within, two_paths

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README = "\n".join(p.read_text() for p in PAGES)


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


def test_the_readme_maps_every_docs_page() -> None:
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)\)", (ROOT / "README.md").read_text()))
    assert linked == {p.name for p in PAGES[1:]}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_names_a_file_that_exists(page: Path) -> None:
    for target in re.findall(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)", page.read_text()):
        assert (page.parent / target).exists(), (page.name, target)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_repository_path_a_page_names_exists(page: Path) -> None:
    """`core/broker.py`, `tests/security/`, `core/lifecycle` (a module): after a move the
    pages name where the code is now."""
    top = r"(?:ml|core|server|worker|cli|neuroreg|frontend|bench|tests|examples|docs|\.ci)"
    named = re.findall(rf"`({top}/[\w./-]*)`", page.read_text())
    assert named
    for path in named:
        assert (ROOT / path).exists() or (ROOT / f"{path}.py").is_file(), (page.name, path)


def _commands() -> list[list[str]]:
    """Every ``neuroreg …`` line of the sh blocks that is a command, not a usage line
    (``[--opt]``, ``…``, ``<id>``)."""
    out = []
    for block in _blocks("sh"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            words = shlex.split(line, comments=True) if line else []
            while words and "=" in words[0]:  # NAME=value before the command
                words = words[1:]
            if words[:1] == ["neuroreg"] and not re.search(r"[\[\]…<>]|\bRUN\b|STUDY", line):
                out.append(words[1:])
    return out


def test_the_readme_has_commands_to_check() -> None:
    assert len(_commands()) >= 8


@pytest.mark.parametrize("argv", _commands(), ids=" ".join)
def test_every_readme_command_parses_and_its_files_exist(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    for word in argv:
        if word.startswith("examples/"):
            assert (ROOT / word).is_file(), word
    assert args.command == argv[0]


def test_the_target_block_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    from ml.neural.estimators import unit_vectors
    from ml.neural.target import SimilarityTarget

    (block,) = [b for b in _blocks("python") if "SimilarityTarget.load" in b]
    f = unit_vectors(np.random.default_rng(0).standard_normal((6, 4)))
    target = SimilarityTarget("neural-model", f, np.arange(6), np.zeros((6, 1, 36, 64)))
    (tmp_path / "target-neural-model.npz").write_bytes(target.to_bytes())
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(block, "docs/similarity.md", "exec"), scope)
    # float32 dot products of unit 4-vectors, summed in two orders
    assert_within(scope["s"], [f[0] @ f[2], f[1] @ f[3]], two_paths(4, 1.0, np.float32))
    assert np.shape(scope["m"]) == (3, 2)
