#!/usr/bin/env bash
# The Python environment with the official Microsoft Graph Python SDK (pinned in
# requirements.txt): creates tests/graph-sim/.venv on first use, reinstalls when
# requirements.txt changes, and prints the path of its python. Used by run.sh and by the
# engine bench (tests/e2e/benches/engine).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$(dirname "$here")/.venv"
python="${PYTHON:-python3}"

stamp="$venv/.requirements.sha256"
wanted="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv" >&2
fi
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
    echo "$wanted" > "$stamp"
fi
echo "$venv/bin/python"
