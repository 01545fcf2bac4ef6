#!/usr/bin/env bash
# Rewrite constraints.txt from what is installed in .venv (run after scripts/setup.sh with every extra).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
{
  echo "# Pinned versions that the tests ran with. Installed by scripts/setup.sh with pip -c."
  echo "# Regenerate after changing dependencies: scripts/setup.sh ALL-EXTRAS, then scripts/freeze.sh"
  .venv/bin/python -m pip freeze --exclude-editable | grep -v '^#' | grep -vi '^chatty'
} > constraints.txt
echo "constraints.txt: $(grep -vc '^#' constraints.txt) packages"
