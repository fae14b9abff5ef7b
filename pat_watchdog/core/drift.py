"""The token setting changed behind the watchdog's back (docs/reference.md, "Reason codes"), told in words (pure).

aggregator-cli's `configure.instance` always rewrites `Aggregator_VstsToken` with the PAT cached by
the operator's `logon.ado`, in plain text, over a Key Vault reference (aggregator-cli src/aggregator-cli/
Instances/AggregatorInstances.cs, ChangeAppSettingsAsync; docs/rotation.md)."""

from __future__ import annotations

PLAIN = "plain"


def form_of(reference: str | None) -> str:
    """`plain`, or `reference <vault>/secrets/<secret>` (the version left out: re-pointing is not a change)."""
    if not reference:
        return PLAIN
    head, _, _version = reference.partition("/secrets/")
    secret = _version.split("/")[0]
    # Vault hosts and secret names are case-insensitive: one secret has one form, however it is spelled.
    return f"reference {head.lower()}/secrets/{secret.lower()}"


def describe(before, fingerprint: str | None, form: str, setting: str) -> str | None:
    """What changed since the last run recorded the setting (`before`: a core/record.Record), or None
    (nothing recorded yet: nothing to tell)."""
    if before is None or not before.form:
        return None
    was_form, was_fp = before.form, before.fingerprint or None
    if was_form != form and form == PLAIN:
        return (f"a Key Vault reference ({was_form.removeprefix('reference ')}) in {setting} was replaced by a "
                f"plain-text token (fingerprint {fingerprint}): aggregator-cli's configure.instance does this. "
                f"Re-point it with az functionapp config appsettings set --settings {setting}="
                f"'@Microsoft.KeyVault(SecretUri={was_form.removeprefix('reference ')}/)'")
    if was_form != form:
        return f"{setting} changed from {was_form.replace(PLAIN, 'a plain-text token')} to {form}"
    if fingerprint and was_fp and fingerprint != was_fp:
        return (f"{setting} holds another token (fingerprint {was_fp} -> {fingerprint}), put there by someone "
                "else than the watchdog; if it was not meant, put the right one back")
    return None
