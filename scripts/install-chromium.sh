#!/usr/bin/env bash
# Installs headless Chromium (Debian package `chromium`) and fonts, used by tests/render to
# render the Teams card and the HTML email, and by scripts/render_docs.py for docs/*.png.
# Idempotent: does nothing when `chromium` and the fonts are already there. When it cannot
# install (not root, no apt-get, no registry) it says so and exits 0; tests/render then
# fails with a message naming this script, so a missing browser is never a silent skip.
set -uo pipefail

PACKAGES="chromium fonts-noto-color-emoji fonts-liberation fonts-dejavu-core"
missing=""
for p in ${PACKAGES}; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="${missing} $p"
done
if [ -z "${missing}" ] && command -v chromium >/dev/null 2>&1; then
    echo "chromium already installed: $(chromium --version 2>/dev/null | head -n1)"
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: cannot install${missing} here (needs root and apt-get);" \
         "install these Debian packages by hand" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
if apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends ${missing} >/dev/null; then
    echo "installed${missing}: $(chromium --version 2>/dev/null | head -n1)"
else
    echo "install-chromium: apt-get could not install${missing}" >&2
fi
exit 0
