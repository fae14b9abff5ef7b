"""The Function App package, built the way azd builds it: .funcignore honoured, and nothing in it but
what the Function needs (function_app.py, host.json, requirements.txt, pat_watchdog/ without the sandbox).

azd's zip (Azure/azure-dev cli/azd/pkg/project/project_utils.go, createDeployableZip): the `.azure`
folder, the ignore file itself and, for a Function, `local.settings.json` are always left out; then the
ignore file's gitignore patterns (github.com/denormal/go-gitignore); only without an ignore file does
it leave out Python virtual environments (a folder holding pyvenv.cfg) and `__pycache__` on its own.
An excluded folder is not entered (pkg/rzip/rzip.go).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pathspec
import pytest

ROOT = Path(__file__).resolve().parents[2]
IGNORE_FILE = ".funcignore"


def package(root: Path) -> set[str]:
    """The files azd would zip from `root`, as POSIX paths relative to it."""
    ignore = root / IGNORE_FILE
    spec = pathspec.GitIgnoreSpec.from_lines(ignore.read_text().splitlines()) if ignore.is_file() else None
    shipped: set[str] = set()
    for folder, dirs, files in os.walk(root):
        here = Path(folder).relative_to(root)
        for name in list(dirs):
            path = (here / name).as_posix()
            kept = name != ".azure" and (
                not spec.match_file(path + "/") if spec else
                not ((Path(folder) / name / "pyvenv.cfg").is_file() or name.lower() == "__pycache__"))
            if not kept:
                dirs.remove(name)
        for name in files:
            path = (here / name).as_posix()
            if name in (IGNORE_FILE, "local.settings.json") or (spec and spec.match_file(path)):
                continue
            shipped.add(path)
    return shipped


def needed() -> set[str]:
    """What the Function needs: its entry point, host configuration, dependencies and the product code."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    code = {p for p in tracked.splitlines() if p.startswith("pat_watchdog/") and not p.startswith("pat_watchdog/sandbox/")}
    return {"function_app.py", "host.json", "requirements.txt"} | code


# What a working copy holds besides the tracked files: every virtual environment azd or a person makes
# (azd's own is <folder>_env, pkg/tools/python VenvNameForDir), caches, Node tooling, azd's state.
LOCAL_ONLY = [
    ".venv/pyvenv.cfg", ".venv/lib/site.py", ".venv-checkov/pyvenv.cfg", "venv/pyvenv.cfg", "env/pyvenv.cfg",
    "platform_env/pyvenv.cfg", "pat-watchdog_env/lib/x.py", "pat_watchdog/__pycache__/cli.cpython-311.pyc",
    "pat_watchdog/core/__pycache__/x.pyc", "node_modules/azurite/package.json", ".pytest_cache/v/x",
    "pat_watchdog.egg-info/PKG-INFO", "build/lib/x.py", ".azure/pat-watchdog/.env", "local.settings.json",
    ".ruff_cache/x", ".hypothesis/x", ".work/x",
]


@pytest.fixture(scope="module")
def working_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tracked files plus LOCAL_ONLY, in a folder of their own."""
    copy = tmp_path_factory.mktemp("working-copy")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for path in tracked.splitlines():
        if (ROOT / path).is_file():
            (copy / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / path, copy / path)
    for path in LOCAL_ONLY:
        (copy / path).parent.mkdir(parents=True, exist_ok=True)
        (copy / path).write_text("x\n")
    return copy


def test_the_package_holds_what_the_function_needs_and_nothing_else(working_copy: Path) -> None:
    shipped = package(working_copy)
    assert shipped - needed() == set(), "ships what the Function does not need"
    assert needed() - shipped == set(), "leaves out what the Function needs"


@pytest.mark.parametrize("venv", ["venv", "env", "platform_env", ".venv"])
def test_every_virtual_environment_is_excluded_by_name(working_copy: Path, venv: str) -> None:
    # Without .funcignore azd finds a venv by its pyvenv.cfg; with it, only the patterns count.
    assert not {p for p in package(working_copy) if p.split("/")[0] == venv}


def test_the_old_ignore_file_would_have_shipped_venvs_and_the_readme(working_copy: Path, tmp_path: Path) -> None:
    # Before: `.venv*/` was its only virtual environment, so venv/, env/ and <folder>_env/ were uploaded.
    old = tmp_path / "old"
    shutil.copytree(working_copy, old)
    text = (old / IGNORE_FILE).read_text()
    for line in ("venv/", "env/", "*_env/", "README.md", "pyproject.toml"):
        text = text.replace(f"\n{line}\n", "\n")
    (old / IGNORE_FILE).write_text(text)
    extra = package(old) - needed()
    assert {"venv/pyvenv.cfg", "env/pyvenv.cfg", "platform_env/pyvenv.cfg", "README.md", "pyproject.toml"} <= extra


def test_without_an_ignore_file_azd_keeps_only_its_python_defaults(working_copy: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(working_copy, bare)
    (bare / IGNORE_FILE).unlink()
    shipped = package(bare)
    assert "venv/pyvenv.cfg" not in shipped and "pat_watchdog/__pycache__/cli.cpython-311.pyc" not in shipped
    assert "tests/conftest.py" in shipped and "pat_watchdog/sandbox/server.py" in shipped
