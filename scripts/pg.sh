#!/usr/bin/env bash
# Throwaway PostgreSQL server for the test suite, on 127.0.0.1 only.
#   scripts/pg.sh start DIR   installs Debian's postgresql if missing, initdb's a cluster in DIR,
#                             starts it and prints its SQLAlchemy URL on stdout
#   scripts/pg.sh stop DIR    stops it (the caller deletes DIR)
set -euo pipefail
cmd=${1:?usage: pg.sh start|stop DIR}
dir=${2:?usage: pg.sh start|stop DIR}
port=${METASTRATEGY_PG_PORT:-54329}

find_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

bin=$(find_bin || true)
if [ -z "$bin" ] && [ "$cmd" = start ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        echo "pg.sh: PostgreSQL is not installed and cannot be installed here (needs root + apt-get)" >&2
        exit 1
    fi
    echo "pg.sh: installing Debian's postgresql package" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    bin=$(find_bin)
fi

# The server refuses to run as root: run it as the 'postgres' user the package creates.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case "$cmd" in
start)
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$dir"; fi
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >&2
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
stop)
    [ -n "$bin" ] && [ -d "$dir/data" ] && as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    ;;
*)
    echo "usage: pg.sh start|stop DIR" >&2
    exit 2
    ;;
esac
