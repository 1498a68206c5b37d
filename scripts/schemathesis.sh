#!/usr/bin/env bash
# Runs schemathesis (from PyPI) against a live queen's own OpenAPI document: no 5xx and every
# documented response must match its schema. Exits non-zero on any failure.
#
#   bash scripts/schemathesis.sh              # 50 examples per operation, fixed seed
#   EXAMPLES=500 SEED=random bash scripts/schemathesis.sh
#   CHECKS=all bash scripts/schemathesis.sh    # every schemathesis check, for exploring
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=${CARGO_TARGET_DIR:-target}
VENV=$TARGET/schemathesis-venv
EXAMPLES=${EXAMPLES:-50}
SEED=${SEED:-20261128}
CHECKS=${CHECKS:-not_a_server_error,response_schema_conformance}
TOKEN=schemathesis-token

if [ ! -x "$VENV/bin/schemathesis" ]; then
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    # Debian and Ubuntu ship venv separately.
    if command -v apt-get >/dev/null 2>&1; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
    rm -rf "$VENV"
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4,<5'
fi

cargo build --quiet -p queen-rbee

LOG=$(mktemp)
# A real data directory, so that the history filters of /v1/events are fuzzed against SQLite.
DATA=$(mktemp -d)
"$TARGET/debug/queen-rbee" --data-dir "$DATA" --bind 127.0.0.1:0 --token "$TOKEN" --snapshot-interval 1s >"$LOG" 2>&1 &
QUEEN=$!
cleanup() {
  kill "$QUEEN" 2>/dev/null || true
  wait "$QUEEN" 2>/dev/null || true
  rm -f "$LOG"
  rm -rf "$DATA"
}
trap cleanup EXIT

PORT=
for _ in $(seq 300); do
  PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$LOG" | head -n 1)
  [ -n "$PORT" ] && break
  kill -0 "$QUEEN" 2>/dev/null || { cat "$LOG" >&2; echo "queen-rbee exited before listening" >&2; exit 1; }
  sleep 0.1
done
[ -n "$PORT" ] || { cat "$LOG" >&2; echo "queen-rbee did not log its port" >&2; exit 1; }

SEED_ARGS=()
[ "$SEED" != random ] && SEED_ARGS=(--seed "$SEED")

# The streams never end by design, so they cannot be fuzzed request by request; the SSE tests
# in bin/queen-rbee/tests cover them.
# Run from target/ so schemathesis keeps its cache (.schemathesis/) out of the source tree.
status=0
VENV_ABS=$(cd "$VENV" && pwd)
(cd "$TARGET" && "$VENV_ABS/bin/schemathesis" run "http://127.0.0.1:$PORT/v1/openapi.json" \
  --header "Authorization: Bearer $TOKEN" \
  --checks "$CHECKS" \
  --max-examples "$EXAMPLES" \
  --exclude-path /v1/heartbeats/stream \
  --exclude-path /v1/watch \
  --request-timeout 10 \
  --generation-database none \
  --no-color \
  "${SEED_ARGS[@]}") || status=$?

if ! kill -0 "$QUEEN" 2>/dev/null; then
  echo "queen-rbee died during the run:" >&2
  cat "$LOG" >&2
  status=1
fi
exit "$status"
