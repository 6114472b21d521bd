#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for `sequent-bench ledger`, on loopback only.
#
#   tools/pg-bench-setup.sh start DIR [PORT]   install PostgreSQL from Debian if missing, initdb
#                                             into DIR/data (trust auth, user "bench"), start it
#                                             on 127.0.0.1:PORT (default 55432), socket in DIR
#   tools/pg-bench-setup.sh stop DIR           stop it (DIR can then be deleted)
#
# PostgreSQL refuses to run as root: as root, the server runs as the "postgres" system user
# (created if missing). Exit 0 when the server is up; any failure exits non-zero and the bench
# skips PostgreSQL with the message.
set -euo pipefail

action=${1:?usage: pg-bench-setup.sh start|stop DIR [PORT]}
dir=${2:?usage: pg-bench-setup.sh start|stop DIR [PORT]}
port=${3:-55432}

find_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

run_as=()
if [ "$(id -u)" = 0 ]; then
    run_as=(runuser -u postgres --)
fi

case "$action" in
start)
    bin=$(find_bin)
    if [ -z "$bin" ] || ! command -v psql >/dev/null; then
        if [ "$(id -u)" != 0 ]; then
            echo "PostgreSQL is not installed and installing it needs root" >&2
            exit 1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >/dev/null
        bin=$(find_bin)
    fi
    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
        useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres
    fi
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        chown -R postgres "$dir"
    fi
    "${run_as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U bench >"$dir/initdb.log" 2>&1
    "${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
    ;;
stop)
    bin=$(find_bin)
    "${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
*)
    echo "usage: pg-bench-setup.sh start|stop DIR [PORT]" >&2
    exit 2
    ;;
esac
