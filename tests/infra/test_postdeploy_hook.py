"""azure.yaml's postdeploy hook calls the doctor function that function_app.py registers, and its
script runs: `sh` with stand-ins for `az` and `curl` that record how they were called."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AZURE_YAML = (ROOT / "azure.yaml").read_text()


def hook() -> tuple[str, str]:
    """(the hook's settings block, its `run` script), read as azd reads them (block scalar, 8 spaces)."""
    block = AZURE_YAML.split("\nhooks:\n", 1)[1]
    script = block.split("      run: |\n", 1)[1]
    lines = [line[8:] for line in script.splitlines() if line.startswith("        ") or not line.strip()]
    return block, "\n".join(lines) + "\n"


def test_the_hook_is_a_posix_postdeploy_hook_that_never_fails_the_deployment():
    block, script = hook()
    assert block.startswith("  postdeploy:\n    posix:\n      shell: sh\n")
    assert "      continueOnError: true\n" in block
    assert "--function-name watchdog_doctor" in script and "--query default -o tsv" in script
    assert re.search(r"def watchdog_doctor\(", (ROOT / "function_app.py").read_text())
    assert '@app.route(route="doctor", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)' in \
        (ROOT / "function_app.py").read_text()


def _stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _run(tmp_path: Path, key: str) -> subprocess.CompletedProcess:
    calls = tmp_path / "calls"
    _stub(tmp_path, "az", f'echo "az $*" >> {calls}\ncase "$*" in\n'
                          '  *"functionapp show"*) echo func-patwatchdog-abc.azurewebsites.net ;;\n'
                          f'  *"function keys list"*) echo "{key}" ;;\nesac\n')
    _stub(tmp_path, "curl", f'echo "curl $*" >> {calls}\necho "doctor: OK (0 to fix, 13 OK, 5 skipped)"\n')
    _stub(tmp_path, "sleep", "exit 0\n")
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "AZURE_RESOURCE_GROUP": "rg-pat-watchdog",
           "AZURE_FUNCTION_NAME": "func-patwatchdog-abc"}
    return subprocess.run(["sh", "-c", hook()[1]], env=env, capture_output=True, text=True, timeout=30)


def test_the_hook_calls_the_doctor_with_the_function_key_and_prints_its_lines(tmp_path):
    result = _run(tmp_path, "k3y")
    calls = (tmp_path / "calls").read_text().splitlines()
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["pat-watchdog doctor on func-patwatchdog-abc:",
                                          "doctor: OK (0 to fix, 13 OK, 5 skipped)"]
    assert calls[1] == ("az functionapp function keys list -g rg-pat-watchdog -n func-patwatchdog-abc "
                        "--function-name watchdog_doctor --query default -o tsv")
    assert calls[2].startswith("curl -fsS ") and calls[2].endswith(
        "-X POST -H x-functions-key: k3y https://func-patwatchdog-abc.azurewebsites.net/api/doctor?format=text")


def test_the_hook_gives_up_when_the_function_never_gets_a_key(tmp_path):
    result = _run(tmp_path, "")
    assert result.returncode == 1 and "no function key for watchdog_doctor" in result.stderr
    assert sum("function keys list" in c for c in (tmp_path / "calls").read_text().splitlines()) == 10
