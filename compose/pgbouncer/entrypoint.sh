#!/bin/sh
# PgBouncer in the compose stack: the RDS Proxy stand-in, configured like the embedded one.
# Arguments are pgbouncer.ini settings (key=value) generated from harness/sizing.py; the password comes
# from the environment and is written only to a private file inside the container, never to the repo.
set -eu
: "${PGUSER:?}" "${PGPASSWORD:?}" "${PGBOUNCER_UPSTREAM_HOST:?}" "${PGBOUNCER_PORT:?}"
umask 077
conf=$(mktemp -d)
printf '"%s" "%s"\n' "$PGUSER" "$PGPASSWORD" > "$conf/userlist.txt"
{
  echo "[databases]"
  echo "* = host=$PGBOUNCER_UPSTREAM_HOST port=${PGBOUNCER_UPSTREAM_PORT:-5432}"
  echo "[pgbouncer]"
  # Inside the container only; compose publishes the port on 127.0.0.1 of the host.
  echo "listen_addr = 0.0.0.0"
  echo "listen_port = $PGBOUNCER_PORT"
  echo "unix_socket_dir ="
  echo "auth_type = scram-sha-256"
  echo "auth_file = $conf/userlist.txt"
  # Every other role is looked up in PostgreSQL, as RDS Proxy looks roles up in its secrets.
  echo "auth_user = $PGUSER"
  echo "auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename=\$1"
  echo "admin_users = $PGUSER"
  echo "stats_users = $PGUSER"
  # psycopg sends these at connect; PgBouncer must accept them instead of refusing the client.
  echo "ignore_startup_parameters = extra_float_digits,options"
  # Later lines win: TLS and pool settings from the arguments, then any the caller adds.
  for setting in "$@"; do
    echo "${setting%%=*} = ${setting#*=}"
  done
} > "$conf/pgbouncer.ini"
exec pgbouncer "$conf/pgbouncer.ini"
