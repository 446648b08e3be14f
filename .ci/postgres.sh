#!/usr/bin/env bash
# Install (if needed) and start a local PostgreSQL server for the tuning tests, then export
# RLTOOL_TEST_POSTGRES_URL. Idempotent; Debian 12, run as root.
#
#   source .ci/postgres.sh      # exports the variable into the calling shell (used by .ci/run)
#   bash .ci/postgres.sh        # prints the export line
#
# Safe to source: no `set -e` or `exit` in the caller's shell; the work runs in a subshell.

_rltool_pg_user="${RLTOOL_PG_USER:-rltool}"
_rltool_pg_password="${RLTOOL_PG_PASSWORD:-rltool}"
_rltool_pg_db="${RLTOOL_PG_DB:-rltool_test}"

_rltool_pg_setup() (
    set -euo pipefail
    # Only the port may reach stdout, which the caller captures: every other command writes to
    # stderr. (pg_ctlcluster prints "Removed stale pid file." to stdout after an unclean stop.)
    # Not `exec 1>&2` with the port on a saved fd: the server would inherit that fd and keep the
    # caller's $(...) waiting forever.
    as_postgres() { runuser -u postgres -- "$@"; }

    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        echo "postgres.sh: installing postgresql" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq postgresql >/dev/null
    fi
    version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
    if [ -z "$version" ]; then
        version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
        pg_createcluster "$version" main >&2
    fi
    port="$(pg_lsclusters --no-header | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')"
    case "$port" in
        '' | *[!0-9]*) echo "postgres.sh: cannot read the cluster's port (got '$port')" >&2; exit 1 ;;
    esac
    if ! pg_lsclusters --no-header | awk -v v="$version" '$1 == v && $2 == "main" && $4 == "online" {found = 1} END {exit !found}'; then
        # A machine image taken while the server ran keeps its lock files. PostgreSQL refuses to
        # start while the PID they name is alive, even when that PID now belongs to another program.
        data_dir="$(pg_lsclusters --no-header | awk -v v="$version" '$1 == v && $2 == "main" {print $6}')"
        for lock in "$data_dir/postmaster.pid" "/var/run/postgresql/.s.PGSQL.$port.lock"; do
            [ -f "$lock" ] || continue
            pid="$(head -n 1 "$lock")"
            if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "postgres" ]; then
                rm -f "$lock"
            fi
        done
        pg_ctlcluster "$version" main start >&2
    fi
    for _ in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 -p "$port" && break
        sleep 1
    done
    pg_isready -q -h 127.0.0.1 -p "$port"

    if [ "$(as_postgres psql -p "$port" -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$_rltool_pg_user'")" != "1" ]; then
        as_postgres psql -p "$port" -q -c "CREATE ROLE \"$_rltool_pg_user\" LOGIN PASSWORD '$_rltool_pg_password'" >&2
    fi
    # the fresh-database tests create (and drop) a database of their own for every run
    as_postgres psql -p "$port" -q -c "ALTER ROLE \"$_rltool_pg_user\" CREATEDB" >&2
    if [ "$(as_postgres psql -p "$port" -tAc "SELECT 1 FROM pg_database WHERE datname = '$_rltool_pg_db'")" != "1" ]; then
        as_postgres createdb -p "$port" -O "$_rltool_pg_user" "$_rltool_pg_db" >&2
    fi
    echo "$port"
)

# Not inside `if`: bash ignores `set -e` in a function called from a condition.
_rltool_pg_port="$(_rltool_pg_setup)"
_rltool_pg_status=$?
if [ "$_rltool_pg_status" -eq 0 ] && [ -n "$_rltool_pg_port" ]; then
    export RLTOOL_TEST_POSTGRES_URL="postgresql+psycopg://$_rltool_pg_user:$_rltool_pg_password@127.0.0.1:$_rltool_pg_port/$_rltool_pg_db"
    echo "export RLTOOL_TEST_POSTGRES_URL=$RLTOOL_TEST_POSTGRES_URL"
    unset _rltool_pg_user _rltool_pg_password _rltool_pg_db _rltool_pg_port _rltool_pg_status
else
    echo "postgres.sh: could not set up PostgreSQL (see the messages above)" >&2
    unset _rltool_pg_user _rltool_pg_password _rltool_pg_db _rltool_pg_port _rltool_pg_status
    # `return` when sourced, `exit` when run as a script
    return 1 2>/dev/null || exit 1
fi
