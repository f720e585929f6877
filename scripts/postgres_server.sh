#!/usr/bin/env bash
# A throwaway PostgreSQL server for the multi-worker search tests and benchmark (source it, do not run it):
#
#     source scripts/postgres_server.sh        # starts it; exports EXITSPACE_POSTGRES_DSN
#     ...                                        # tests/test_postgres_workers.py uses it, skips without it
#     exitspace_postgres_stop                   # stops it and removes its data directory
#
# Uses the PostgreSQL binaries on PATH or under /usr/lib/postgresql/*/bin; installs the postgresql package with
# apt-get where there are none (as root). PostgreSQL refuses to run as root: as root the server runs as the
# user postgres (created where missing). Trust authentication on 127.0.0.1 only; port EXITSPACE_POSTGRES_PORT
# (default 54329). On failure it says why and leaves EXITSPACE_POSTGRES_DSN unset (the tests then skip).

exitspace_postgres_bin() {
    if command -v initdb >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v initdb)")"; return; fi
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

exitspace_postgres_start() {
    local bin port data as=()
    bin=$(exitspace_postgres_bin)
    if [ -z "$bin" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "postgres: installing the postgresql package" >&2
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null 2>&1
        bin=$(exitspace_postgres_bin)
    fi
    if [ -z "$bin" ]; then echo "postgres: no PostgreSQL binaries; the multi-worker tests will skip" >&2; return 0; fi
    port=${EXITSPACE_POSTGRES_PORT:-54329}
    data=$(mktemp -d /tmp/exitspace-postgres.XXXXXX)
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$data"
        as=(runuser -u postgres --)
    fi
    if ! "${as[@]}" "$bin/initdb" -D "$data/db" -A trust -U postgres >"$data/initdb.log" 2>&1 ||
       ! "${as[@]}" "$bin/pg_ctl" -D "$data/db" -l "$data/server.log" -w -t 60 \
            -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=50 -c fsync=off" start >/dev/null; then
        echo "postgres: the server did not start (see $data/*.log); the multi-worker tests will skip" >&2
        return 0
    fi
    export EXITSPACE_POSTGRES_DSN="postgresql://postgres@127.0.0.1:$port/postgres"
    export EXITSPACE_POSTGRES_DATA="$data"
    EXITSPACE_POSTGRES_PGCTL=("${as[@]}" "$bin/pg_ctl")
    echo "postgres: running on 127.0.0.1:$port (data $data)" >&2
}

exitspace_postgres_stop() {
    if [ -n "${EXITSPACE_POSTGRES_DATA:-}" ]; then
        "${EXITSPACE_POSTGRES_PGCTL[@]}" -D "$EXITSPACE_POSTGRES_DATA/db" -m fast -w stop >/dev/null 2>&1 || true
        rm -rf "$EXITSPACE_POSTGRES_DATA"
        unset EXITSPACE_POSTGRES_DSN EXITSPACE_POSTGRES_DATA
    fi
}

exitspace_postgres_start
