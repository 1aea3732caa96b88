#!/bin/sh
# Runs once, when the PostgreSQL volume is first initialised (docker-entrypoint-initdb.d):
# the read model's own role and database, apart from Temporal's.
set -eu
: "${CHUANGZHENG_DB_PASSWORD:?CHUANGZHENG_DB_PASSWORD is required}"
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER}" --dbname postgres \
    -v password="${CHUANGZHENG_DB_PASSWORD}" <<'SQL'
CREATE ROLE chuangzheng LOGIN PASSWORD :'password';
CREATE DATABASE chuangzheng OWNER chuangzheng;
SQL
