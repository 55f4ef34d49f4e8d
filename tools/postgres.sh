#!/usr/bin/env bash
# Start (or reuse) a private PostgreSQL server for the test suite, on loopback only.
# Prints the SQLAlchemy URL to use. Usage: tools/postgres.sh start|stop|url
set -euo pipefail
PORT="${BEAMDESK_PG_PORT:-54329}"
DIR="${BEAMDESK_PG_DIR:-/tmp/beamdesk-pg-$PORT}"
URL="postgresql+psycopg://beamdesk@127.0.0.1:$PORT/beamdesk"

bin_dir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] || { echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }
  echo "$d"
}

# initdb and postgres refuse to run as root: run them as the 'postgres' system user then.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-start}" in
  start)
    B=$(bin_dir)
    if [ ! -f "$DIR/PG_VERSION" ]; then
      mkdir -p "$DIR"
      [ "$(id -u)" = 0 ] && chown postgres:postgres "$DIR"
      as_owner "$B/initdb" -D "$DIR" -U beamdesk --auth=trust -E UTF8 >/dev/null
    fi
    if ! as_owner "$B/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
      as_owner "$B/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w -t 60 \
        -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
    fi
    for _ in $(seq 1 30); do
      "$B/pg_isready" -h 127.0.0.1 -p "$PORT" -q && break
      sleep 0.5
    done
    "$B/psql" -h 127.0.0.1 -p "$PORT" -U beamdesk -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname='beamdesk'" | grep -q 1 \
      || "$B/createdb" -h 127.0.0.1 -p "$PORT" -U beamdesk beamdesk
    echo "$URL"
    ;;
  stop)
    B=$(bin_dir)
    as_owner "$B/pg_ctl" -D "$DIR" stop -m fast >/dev/null 2>&1 || true
    ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
