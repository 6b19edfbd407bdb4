#!/bin/sh
# PostgreSQL in the compose stack: initialises the data volume once, as the public postgres images do
# (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, POSTGRES_INITDB_ARGS, /docker-entrypoint-initdb.d/*.sql),
# then runs the command. Initialisation happens in a side directory renamed into place at the end, so a
# container killed half-way leaves nothing a later start would take for a database.
set -eu
: "${POSTGRES_USER:?}" "${POSTGRES_PASSWORD:?}" "${POSTGRES_DB:?}" "${PGDATA:?}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  staging="$PGDATA.initialising"
  rm -rf "$staging"
  umask 077
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  # shellcheck disable=SC2086
  initdb --pgdata="$staging" --username="$POSTGRES_USER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 ${POSTGRES_INITDB_ARGS:-} >/dev/null
  rm -f "$pwfile"
  # Other containers reach it over the compose network; the host only through 127.0.0.1 (published port).
  echo "host all all all scram-sha-256" >> "$staging/pg_hba.conf"
  echo "listen_addresses = '*'" >> "$staging/postgresql.conf"
  # On the socket only: the TCP healthcheck passes once the real server is up.
  pg_ctl --pgdata="$staging" --wait --silent -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" start
  if [ "$POSTGRES_DB" != postgres ]; then
    # From stdin: psql quotes the name (:"db") only there, not in -c.
    echo 'CREATE DATABASE :"db"' | psql -v ON_ERROR_STOP=1 -qX -h /var/run/postgresql -U "$POSTGRES_USER" \
      -d postgres -v db="$POSTGRES_DB"
  fi
  for script in /docker-entrypoint-initdb.d/*.sql; do
    [ -e "$script" ] || continue
    psql -v ON_ERROR_STOP=1 -qX -h /var/run/postgresql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "$script"
  done
  pg_ctl --pgdata="$staging" --wait --silent -m fast stop
  rmdir "$PGDATA" 2>/dev/null || true
  mv "$staging" "$PGDATA"
fi
exec "$@"
