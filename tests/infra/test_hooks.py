"""azure.yaml's hooks run on Linux, macOS and Windows: every hook has a `posix` (sh) and a `windows`
(pwsh) form, and both make the same calls. The postdeploy hook calls the doctor function that
function_app.py registers, and its sh script runs with stand-ins for `az` and `curl` that record how
they were called (PowerShell cannot be installed here: the pwsh form is compared with the sh one).

azd (Azure/azure-dev cli/azd/pkg/ext/hooks_manager.go): on Windows a hook's `windows` block replaces
it, on Linux and macOS its `posix` block; without one the outer block runs, and a block without
`run` fails the command (models.go, `validate()`: "'run' is required for every hook configuration").
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AZURE_YAML = (ROOT / "azure.yaml").read_text()
SHELLS = {"posix": "sh", "windows": "pwsh"}   # azd's schema: `shell` (alias of `kind`) is sh or pwsh
CONTINUATION = {"posix": r"\\", "windows": "`"}


def hooks(text: str = AZURE_YAML) -> dict[str, dict[str, dict[str, str]]]:
    """hook -> platform -> {key: value}, `run` the script, read in this file's layout (hooks: at
    column 0, hook names at 2, platforms at 4, keys at 6, the run block scalar at 8)."""
    found: dict[str, dict[str, dict[str, str]]] = {}
    lines = text.split("\nhooks:\n", 1)[1].splitlines()
    hook = platform = None
    index = 0
    while index < len(lines) and not re.match(r"^\S", lines[index]):
        line = lines[index]
        index += 1
        if match := re.match(r"^  (\w+):\s*$", line):
            hook, platform = match[1], None
            found[hook] = {}
        elif match := re.match(r"^    (\w+):\s*$", line):
            platform = match[1]
            found[hook][platform] = {}
        elif match := re.match(r"^ {4,6}(\w+): ?(.*)$", line):
            key, value = match[1], match[2].strip()
            target = found[hook][platform] if platform and line.startswith("      ") else found[hook]
            if value == "|":
                script = []
                while index < len(lines) and (lines[index].startswith("        ") or not lines[index].strip()):
                    script.append(lines[index][8:])
                    index += 1
                value = "\n".join(script).rstrip() + "\n"
            target[key] = value
    return found


def hook() -> tuple[str, str]:
    """(the postdeploy hook's settings block, its posix `run` script)."""
    return AZURE_YAML.split("\nhooks:\n", 1)[1], hooks()["postdeploy"]["posix"]["run"]


def joined(script: str, platform: str) -> str:
    """The script with its line continuations joined."""
    return re.sub(CONTINUATION[platform] + r"\n\s*", " ", script)


def canonical(text: str) -> str:
    """Variables spelt alike in both shells: "$RG", $env:AZURE_X, ${APP} -> RG, AZURE_X, APP."""
    text = re.sub(r'"\$(?:env:)?\{?(\w+)\}?"', lambda m: m[1].upper(), text)   # a quoted variable alone
    text = re.sub(r'\$(?:env:)?\{?(\w+)\}?', lambda m: m[1].upper(), text)
    return text.replace("HOSTNAME", "HOST")   # pwsh's $Host is taken (variable names ignore case)


def az_calls(script: str, platform: str) -> list[list[str]]:
    """Every `az` command of the script, its arguments as a list."""
    pattern = r"\baz ([^\n)|]*?)(?=\s*(?:2>|\)|\|\||$))"
    return [shlex.split(canonical(m[1])) for m in re.finditer(pattern, joined(script, platform), re.MULTILINE)]


def http_call(script: str, platform: str) -> dict[str, str]:
    """The doctor request, whatever the client: method, URL, key header, time-out and retries."""
    text = canonical(joined(script, platform))
    if platform == "posix":
        args = shlex.split(re.search(r"^\s*curl (.*)$", text, re.MULTILINE)[1])
        option = {a: args[i + 1] for i, a in enumerate(args) if a in ("-X", "-H", "--retry", "--retry-delay",
                                                                         "--max-time")}
        return {"method": option["-X"].upper(), "url": args[-1], "header": option["-H"],
                "timeout": option["--max-time"], "retries": option["--retry"], "delay": option["--retry-delay"]}
    line = re.search(r"^\s*Invoke-RestMethod (.*)$", text, re.MULTILINE)[1]
    header = re.search(r"@\{ '([\w-]+)' = (\w+) \}", line)
    args = shlex.split(line.replace(header[0], "HEADERS"))
    option = {a.lower(): args[i + 1] for i, a in enumerate(args) if a.startswith("-")}
    return {"method": option["-method"].upper(), "url": option["-uri"], "header": f"{header[1]}: {header[2]}",
            "timeout": option["-timeoutsec"], "retries": option["-maximumretrycount"],
            "delay": option["-retryintervalsec"]}


def messages(script: str) -> set[str]:
    """What the script prints of its own."""
    return {canonical(m) for m in re.findall(r"pat-watchdog doctor[^\"'\n]*", script)}


@pytest.mark.parametrize("name", sorted(hooks()))
def test_every_hook_has_a_posix_and_a_windows_form(name):
    forms = hooks()[name]
    assert set(forms) == {"posix", "windows"}, f"{name}: {sorted(forms)} (azd fails on an OS without its form)"
    for platform, form in forms.items():
        assert form.get("shell") == SHELLS[platform] and form.get("run", "").strip(), (name, platform)
    assert forms["posix"].get("continueOnError") == forms["windows"].get("continueOnError")


@pytest.mark.parametrize("name", sorted(hooks()))
def test_both_forms_of_a_hook_make_the_same_calls(name):
    posix, windows = (hooks()[name][p]["run"] for p in ("posix", "windows"))
    assert az_calls(posix, "posix") and az_calls(posix, "posix") == az_calls(windows, "windows")
    assert http_call(posix, "posix") == http_call(windows, "windows")
    assert messages(posix) and messages(posix) == messages(windows)


def test_a_missing_or_different_windows_form_is_caught():
    one_sided = AZURE_YAML[:AZURE_YAML.index("    windows:\n")]
    assert set(hooks(one_sided)["postdeploy"]) == {"posix"}
    changed = hooks(AZURE_YAML.replace("--query default -o tsv 2>$null", "--query key -o tsv 2>$null"))
    assert az_calls(changed["postdeploy"]["windows"]["run"], "windows") != az_calls(hook()[1], "posix")
    changed = hooks(AZURE_YAML.replace("-TimeoutSec 230", "-TimeoutSec 30"))
    assert http_call(changed["postdeploy"]["windows"]["run"], "windows") != http_call(hook()[1], "posix")


def test_the_hook_is_a_postdeploy_hook_that_never_fails_the_deployment():
    block, script = hook()
    assert block.startswith("  postdeploy:\n    posix:\n      shell: sh\n")
    assert {hooks()["postdeploy"][p]["continueOnError"] for p in SHELLS} == {"true"}
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
