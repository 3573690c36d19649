#!/bin/sh
# Start PostgreSQL; on an empty data volume, create the cluster, the shop's role, schema and
# seed data first (on a socket only, so the port opens when the database is really ready).
set -eu
PGBIN=/usr/lib/postgresql/15/bin
DATA=/var/lib/postgresql/data
as_postgres() { runuser -u postgres -- "$@"; }
chown postgres:postgres "$DATA"
if [ ! -s "$DATA/PG_VERSION" ]; then
  as_postgres "$PGBIN/initdb" -D "$DATA" --username=postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 >/dev/null
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$DATA/pg_hba.conf"
  as_postgres "$PGBIN/pg_ctl" -D "$DATA" -o "-c listen_addresses=''" -w start >/dev/null
  as_postgres psql -q -v ON_ERROR_STOP=1 -v app_password="${SHOP_DB_PASSWORD:?set SHOP_DB_PASSWORD}" -f /opt/shop-db/init.sql
  as_postgres "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
  echo "database initialised"
fi
# fsync off: a throw-away test database favours speed over surviving a power cut.
exec runuser -u postgres -- "$PGBIN/postgres" -D "$DATA" -c listen_addresses='*' -c fsync=off \
  -c synchronous_commit=off -c full_page_writes=off -c max_connections=200
