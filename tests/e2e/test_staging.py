"""The staging command an alert prints, run as printed: bash runs it, the PAT comes in on stdin and
never reaches a command line, and an `az` that does what the Azure CLI does (SecretClient.set_secret
with the file's text, `--expires`, `--tags` and its own `file-encoding` tag: azure-cli keyvault
`_validators.process_secret_set_namespace`) stores it; the watchdog then rotates it in or adopts it,
paying no attention to `file-encoding`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.e2e.conftest import NAME, STAGED, card_texts
from tests.leaks import assert_no_leak, fp, track

# What `az keyvault secret set` does with these arguments, through the SDK the Azure CLI uses.
FAKE_AZ = '''#!{python}
import argparse, json, os, sys
from datetime import datetime, timezone
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient

parser = argparse.ArgumentParser(prog="az")
parser.add_argument("group"); parser.add_argument("noun"); parser.add_argument("verb")
parser.add_argument("--vault-name", required=True); parser.add_argument("--name", required=True)
source = parser.add_mutually_exclusive_group(required=True)
source.add_argument("--value"); source.add_argument("--file")
parser.add_argument("--encoding", default="utf-8"); parser.add_argument("--expires")
parser.add_argument("--tags", nargs="*", default=[])
args = parser.parse_args()
assert (args.group, args.noun, args.verb) == ("keyvault", "secret", "set"), sys.argv
with open(os.environ["AZ_RECORD"], "w") as record:
    json.dump(sys.argv[1:], record)
value = args.value if args.value is not None else open(args.file, "r").read()
formats = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%MZ", "%Y-%m-%dT%HZ", "%Y-%m-%d")
def moment(text):
    for form in formats:
        try:
            return datetime.strptime(text, form).replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    sys.exit(f"az: error: argument --expires: invalid datetime_type value: {{text!r}}")
tags = dict(tag.split("=", 1) if "=" in tag else (tag, "") for tag in args.tags)
tags["file-encoding"] = args.encoding
client = SecretClient(f"https://{{args.vault_name}}.vault.azure.net", DefaultAzureCredential(),
                      verify_challenge_resource=False)
client.set_secret(args.name, value, expires_on=moment(args.expires) if args.expires else None, tags=tags)
'''


@pytest.fixture
def az(tmp_path, world):
    """Runs a command line in bash with that `az` first on PATH; returns what `az` was called with."""
    if not shutil.which("bash"):
        pytest.fail("bash is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "az"
    script.write_text(FAKE_AZ.format(python=sys.executable))
    script.chmod(0o755)
    record = tmp_path / "argv.json"

    def run(command: str, typed: str) -> list[str]:
        env = {**os.environ, **world.env(), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               "AZ_RECORD": str(record)}
        done = subprocess.run(["bash", "-c", command], input=typed, capture_output=True, text=True, env=env,
                              timeout=120, check=False)
        for where, text in (("stdout", done.stdout), ("stderr", done.stderr)):
            assert_no_leak(text, track(world), where=f"az {where}")
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(record.read_text())
    return run


def printed_command(sandbox, code: str) -> str:
    """The command line of the last card whose text names `code`'s situation: its monospace TextRun."""
    for envelope in reversed(sandbox.teams.received):
        body = envelope["attachments"][0]["content"]["body"]
        runs = [r for block in body if block.get("type") == "RichTextBlock" for r in block["inlines"]
                if r.get("fontType") == "Monospace"]
        if runs and code in " ".join(card_texts(envelope)):
            return runs[0]["text"]
    raise AssertionError(f"no card with a command for {code}")


def test_the_command_a_card_prints_stages_a_replacement_that_is_rotated_in(world, sandbox, run_cli, channels, az):
    old, _ = world.issue(10)
    app = world.add_instance(NAME, old)
    world.stage(old, days=10, tags={"watchdog-status": "current"})
    assert run_cli("run", **channels).code == 0
    command = printed_command(sandbox, "expires soon")
    assert command.startswith("read -rs PAT && printf %s \"$PAT\" | az keyvault secret set ")
    new, _ = world.issue(100)
    argv = az(command, new + "\n")                          # typed at the prompt, then Enter
    assert new not in " ".join(argv) and argv[argv.index("--file") + 1] == "/dev/stdin"
    [version] = [v for v in sandbox.vault.versions("contoso-kv", STAGED) if fp(v["value"]) == fp(new)]
    assert version["value"] == new                          # stored as typed: no newline
    assert version["tags"] == {"scopes": "vso.identity vso.project vso.serviceendpoint_manage vso.work_full",
                               "file-encoding": "utf-8"}    # no backslash from the card in the tag

    result = run_cli("run", "--json", **channels)
    inst = result.instance(NAME)
    assert result.code == 0 and inst["status"] == "OK", inst["reasons"]
    assert fp(world.token_setting(app)) == fp(new) and inst["candidate"]["state"] == "current"
    tags = next(v["tags"] for v in sandbox.vault.versions("contoso-kv", STAGED) if v["version"] == version["version"])
    assert tags["file-encoding"] == "utf-8" and tags["watchdog-status"] == "current"     # kept, never read
    assert "file-encoding" not in json.dumps(inst)


def test_the_expiry_unknown_command_stages_the_current_token_with_the_date_typed_and_it_is_adopted(
        world, sandbox, run_cli, channels, az):
    token, _ = world.issue(100)
    world.add_instance(NAME, token)
    sandbox.devops.listing_status = 403                      # nothing knows the expiry
    assert run_cli("run", **channels).code == 0
    command = printed_command(sandbox, "no source knows when the token expires")
    assert "read -rs PAT && read -r EXPIRES && " in command and "--tags" not in command
    argv = az(command, token + "\n" + "2027-01-15\n")
    assert token not in " ".join(argv) and "2027-01-15" in argv
    result = run_cli("run", "--json", **channels)
    inst = result.instance(NAME)
    assert inst["candidate"]["state"] == "current" and inst["token"]["expires_on"] == "2027-01-15T00:00:00Z"
    assert "EXPIRY_UNKNOWN" not in [r["code"] for r in inst["reasons"]] and inst["status"] == "OK", inst["reasons"]
