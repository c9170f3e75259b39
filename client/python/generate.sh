#!/usr/bin/env bash
# Generates the grpcio Python code of retract.v1 from proto/retract/v1/*.proto with
# grpcio-tools (its protoc; no system protoc needed):
#
#   client/python/generate.sh [OUT_DIR]      # default: client/python/gen (ignored by git)
#
# Not committed: it is generated from the protos every time, so it cannot go stale. Uses
# $PYTHON (default: python3), which must have requirements.txt installed (run.sh does that).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$here/gen}"
python="${PYTHON:-python3}"

rm -rf "$out"
mkdir -p "$out"
"$python" -m grpc_tools.protoc -I "$root/proto" \
    --python_out="$out" --grpc_python_out="$out" --pyi_out="$out" \
    "$root"/proto/retract/v1/*.proto
touch "$out/retract/__init__.py" "$out/retract/v1/__init__.py"
echo "generated $(find "$out" -name '*.py' | wc -l) Python files in $out"
