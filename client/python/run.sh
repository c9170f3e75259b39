#!/usr/bin/env bash
# Runs example.py against a retract server:
#
#   RETRACT_TOKEN=… client/python/run.sh --endpoint 127.0.0.1:50051 --tenant acme \
#       --message-id '<id@host>' --recipient alice@contoso.com
#
# Creates a virtualenv with requirements.txt on first use ($RETRACT_PY_VENV, default
# ~/.cache/retract-ci/python-client-venv; reinstalled when requirements.txt changes),
# generates the grpcio code from proto/ into client/python/gen (generate.sh; ignored by git),
# and runs the example with the arguments given.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${RETRACT_PY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/retract-ci/python-client-venv}"
stamp="$venv/.requirements.sha256"
wanted="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" ]]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    echo "$wanted" > "$stamp"
fi
PYTHON="$venv/bin/python" "$here/generate.sh" "$here/gen"
PYTHONPATH="$here/gen" exec "$venv/bin/python" "$here/example.py" "$@"
