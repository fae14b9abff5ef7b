#!/usr/bin/env bash
# Renders docs/flow.dot (the README's flow diagram) to docs/flow.png with Graphviz.
# Needs `dot` (Debian/Ubuntu: apt-get install -y graphviz). Run again after editing docs/flow.dot.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v dot >/dev/null || { echo "render_flow: Graphviz 'dot' not found (apt-get install -y graphviz)" >&2; exit 1; }
dot -Tpng -Gdpi=110 docs/flow.dot -o docs/flow.png
echo "wrote docs/flow.png"
