#!/bin/sh
# Temporal's databases on PostgreSQL, set up with Temporal's own schema tool (admin-tools
# image). Safe to run again: an existing database is kept, `setup-schema -v 0.0` skips a
# schema already past 0.0, and `update-schema` applies only the versions not yet applied
# (the way to upgrade after moving to a newer server image).
set -eu
: "${POSTGRES_SEEDS:?POSTGRES_SEEDS is required}"
: "${POSTGRES_USER:?POSTGRES_USER is required}"
: "${SQL_PASSWORD:?SQL_PASSWORD is required}"
PORT="${DB_PORT:-5432}"
SCHEMA_ROOT="${TEMPORAL_SCHEMA_ROOT:-/etc/temporal/schema/postgresql/v12}"

echo "waiting for PostgreSQL at ${POSTGRES_SEEDS}:${PORT}"
attempt=0
until nc -z -w 5 "${POSTGRES_SEEDS}" "${PORT}"; do
    attempt=$((attempt + 1))
    [ "${attempt}" -lt 60 ] || { echo "PostgreSQL did not answer" >&2; exit 1; }
    sleep 2
done

tool() {
    temporal-sql-tool --plugin postgres12 --ep "${POSTGRES_SEEDS}" -u "${POSTGRES_USER}" \
        -p "${PORT}" "$@"
}

for pair in temporal:temporal temporal_visibility:visibility; do
    database="${pair%%:*}"
    schema="${pair##*:}"
    tool --db "${database}" create || echo "database ${database} exists: kept"
    tool --db "${database}" setup-schema -v 0.0
    tool --db "${database}" update-schema -d "${SCHEMA_ROOT}/${schema}/versioned"
done
echo "Temporal schema ready"
