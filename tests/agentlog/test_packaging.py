"""One import namespace: the wheel installs only ``agentlog``, and nothing imports the top-level folders.

``processors/``, ``projections/`` and ``replay/`` stay where the design puts them; the
package reaches them through the symlinks ``agentlog/processors`` and so on, which a wheel,
an sdist and an editable install all follow.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.support import REPO

FOLDERS = ("processors", "projections", "replay")
SOURCES = ("agentlog", "processors", "projections", "replay", "tests", "bench", "deploy")


def _python_files() -> list[Path]:
    files: list[Path] = []
    for top in SOURCES:
        root = REPO / top
        if root.is_symlink():
            continue
        files += [p for p in root.rglob("*.py") if not any(part.is_symlink() for part in p.parents)]
    return files


def _top_level_imports(path: Path) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found += [f"{path.relative_to(REPO)}:{node.lineno} imports {n}" for n in names if n.split(".")[0] in FOLDERS]
    return found


def test_nothing_imports_the_top_level_folders() -> None:
    """Every import of the processors, projections and replay goes through ``agentlog.``."""
    files = _python_files()
    assert len(files) > 100
    offenders = [line for path in files for line in _top_level_imports(path)]
    assert offenders == []


def test_no_lower_layer_imports_the_cli() -> None:
    """The CLI is the top floor: only ``agentlog/cli`` imports ``agentlog.cli``."""
    package = ("agentlog", *FOLDERS)
    lower = [p for p in _python_files() if p.parts[len(REPO.parts)] in package and "cli" not in p.parts]
    imports_cli = re.compile(r"^\s*(from agentlog\.cli\b|import agentlog\.cli\b|from agentlog import .*\bcli\b)")
    offenders = [
        f"{p.relative_to(REPO)}: {line.strip()}"
        for p in lower
        for line in p.read_text().splitlines()
        if imports_cli.match(line)
    ]
    assert offenders == []


@pytest.mark.timeout(600)
def test_the_wheel_installs_only_agentlog(tmp_path: Path) -> None:
    """The built wheel holds one top-level package; installed in a fresh virtualenv, its CLI and subpackages work."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("agentlog-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"agentlog"}
    env = tmp_path / "venv"
    venv.create(env, system_site_packages=True, with_pip=True)  # the dependencies come from this interpreter
    python = env / "bin" / "python"
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only what the venv itself sees
    install = [str(python), "-m", "pip", "install", "--no-deps", "--quiet", str(wheel)]
    subprocess.run(install, check=True, capture_output=True, env=clean)
    help_run = subprocess.run([str(env / "bin" / "agentlog"), "--help"], check=True, capture_output=True, env=clean)
    assert b"processors" in help_run.stdout
    probe = (
        "import agentlog, agentlog.processors.spawn_gate, agentlog.projections.projector, agentlog.replay.verify;"
        "from agentlog.processors.policy import load_default_policy; load_default_policy();"
        "from agentlog.projections.migrate import load_migrations; assert load_migrations();"
        "print(agentlog.__file__)"
    )
    where = subprocess.run(
        [str(python), "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path, env=clean
    )
    assert where.stdout.strip().startswith(str(env)), where.stdout


def test_replay_uses_only_the_faces_of_the_processors_and_the_projections() -> None:
    """Replay imports ``agentlog.processors`` and ``agentlog.projections`` themselves, never their modules."""
    offenders = []
    for path in sorted((REPO / "replay").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts = node.module.split(".")
                if parts[:2] in (["agentlog", "processors"], ["agentlog", "projections"]) and len(parts) > 2:
                    offenders.append(f"{path.name}:{node.lineno} from {node.module}")
    assert offenders == []


@pytest.mark.parametrize("package", ["agentlog.processors", "agentlog.projections", "agentlog.replay"])
def test_each_subpackage_declares_its_face(package: str) -> None:
    """Every name in ``__all__`` exists, and the face is not empty."""
    module = importlib.import_module(package)
    assert module.__all__
    assert [name for name in module.__all__ if not hasattr(module, name)] == []
