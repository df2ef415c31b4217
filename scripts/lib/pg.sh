# Sourced by scripts/test, scripts/bench and others: makes sure a Postgres is
# reachable and exports DATABASE_URL.
#
# Which Postgres: $DATABASE_URL if set; else the server on 127.0.0.1:5432
# (started with pg_ctlcluster if it is installed but down); else a throwaway
# cluster made with initdb under ./.pgtest on port 20432, stopped at exit.

log() { echo "${0##*/}: $*" >&2; }

pg_up() { # host port
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$1" -p "$2"
  else
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
  fi
}

wait_pg() { # host port
  for _ in $(seq 1 60); do pg_up "$1" "$2" && return 0; sleep 0.5; done
  return 1
}

start_throwaway() {
  # Not local: the EXIT trap below reads them after this function returned.
  local initdb
  bindir="" dir=".pgtest" port=20432 runas=()
  initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$initdb" ] || initdb=$(command -v initdb || true)
  if [ -z "$initdb" ]; then
    log "no Postgres found: set DATABASE_URL, or install PostgreSQL (apt-get install postgresql)"
    exit 1
  fi
  bindir=$(dirname "$initdb")
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    runas=(runuser -u postgres --)
  fi
  rm -rf "$dir"; mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  "${runas[@]}" "$bindir/initdb" -D "$PWD/$dir/data" -U postgres --auth=trust >/dev/null
  "${runas[@]}" "$bindir/pg_ctl" -D "$PWD/$dir/data" -l "$PWD/$dir/log" \
    -o "-p $port -k $PWD/$dir -c listen_addresses=127.0.0.1 -c fsync=off" -w start >/dev/null
  trap '"${runas[@]}" "$bindir/pg_ctl" -D "$PWD/$dir/data" -m immediate stop >/dev/null 2>&1 || true' EXIT
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  log "started a throwaway Postgres on port $port"
}

ensure_postgres() {
if [ -z "${DATABASE_URL:-}" ]; then
  if ! pg_up 127.0.0.1 5432; then
    if command -v pg_ctlcluster >/dev/null 2>&1 && ls /etc/postgresql/*/main >/dev/null 2>&1; then
      ver=$(ls /etc/postgresql | sort -V | tail -1)
      log "starting the local Postgres $ver cluster"
      pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
      wait_pg 127.0.0.1 5432 || start_throwaway
    else
      start_throwaway
    fi
  fi
  export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
fi
log "using Postgres at ${DATABASE_URL%%\?*}"
}
