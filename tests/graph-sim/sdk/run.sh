#!/usr/bin/env bash
# Stock-client check: the official Microsoft Graph Python SDK (pinned in requirements.txt)
# finds and deletes a message through graph-sim.
#
#   tests/graph-sim/sdk/run.sh
#
# Creates tests/graph-sim/.venv on first use and reuses it while requirements.txt is unchanged,
# builds and starts the graph-sim binary on a free 127.0.0.1 port, runs find_and_delete.py,
# and stops the simulator again.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
crate="$(dirname "$here")"
workspace="$(cd "$crate/../.." && pwd)"
venv_python="$(bash "$here/venv.sh")"

cargo build --quiet -p graph-sim --bin graph-sim --manifest-path "$workspace/Cargo.toml"
target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$workspace/Cargo.toml" \
    | "$venv_python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"

log="$(mktemp)"
"$target_dir/debug/graph-sim" --fixture "$here/fixture.json" --port 0 > "$log" 2>&1 &
sim_pid=$!
trap 'kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; rm -f "$log"' EXIT

ready=""
for _ in $(seq 1 100); do
    if ready="$(grep -m1 '^graph-sim graph=' "$log")"; then
        break
    fi
    if ! kill -0 "$sim_pid" 2>/dev/null; then
        cat "$log" >&2
        echo "graph-sim exited before it was ready" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z "$ready" ]]; then
    echo "graph-sim did not report its address" >&2
    exit 1
fi
graph="$(sed -E 's/.*graph=([^ ]+).*/\1/' <<< "$ready")"
login="$(sed -E 's/.*login=([^ ]+).*/\1/' <<< "$ready")"

GRAPH_SIM_GRAPH="$graph" GRAPH_SIM_LOGIN="$login" "$venv_python" "$here/find_and_delete.py"
