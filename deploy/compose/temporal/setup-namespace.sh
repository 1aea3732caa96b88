#!/bin/sh
# The namespace the service runs in, and the search attributes its workflows carry
# (workflows/search_attributes.py: ALL_KEYS; tests/test_deploy_files.py keeps the two
# lists equal). Safe to run again. Run with the admin-tools image (the `temporal` CLI).
set -eu
ADDRESS="${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS is required}"
NAMESPACE="${TEMPORAL_NAMESPACE:-chuangzheng}"
RETENTION="${TEMPORAL_RETENTION:-400d}"
# name=type, as `temporal operator search-attribute create --type` takes them.
SEARCH_ATTRIBUTES="CzRound=Keyword CzOrganisation=Keyword CzTownship=Keyword CzOrgType=Keyword CzPhase=Keyword CzLight=Keyword CzOverdue=Bool CzCounty=Keyword"

echo "waiting for Temporal at ${ADDRESS}"
attempt=0
until temporal operator cluster health --address "${ADDRESS}" >/dev/null 2>&1; do
    attempt=$((attempt + 1))
    [ "${attempt}" -lt 60 ] || { echo "Temporal did not become healthy" >&2; exit 1; }
    sleep 2
done

if temporal operator namespace describe --address "${ADDRESS}" -n "${NAMESPACE}" >/dev/null 2>&1; then
    echo "namespace ${NAMESPACE} exists"
else
    temporal operator namespace create --address "${ADDRESS}" -n "${NAMESPACE}" \
        --retention "${RETENTION}"
    echo "namespace ${NAMESPACE} created (retention ${RETENTION})"
fi

# A namespace just created takes a moment to be known to every service: retry.
attempt=0
until existing="$(temporal operator search-attribute list --address "${ADDRESS}" -n "${NAMESPACE}")"; do
    attempt=$((attempt + 1))
    [ "${attempt}" -lt 30 ] || { echo "cannot list search attributes" >&2; exit 1; }
    sleep 2
done
for pair in ${SEARCH_ATTRIBUTES}; do
    name="${pair%%=*}"
    type="${pair##*=}"
    if printf '%s\n' "${existing}" | grep -qw "${name}"; then
        echo "search attribute ${name} exists"
        continue
    fi
    temporal operator search-attribute create --address "${ADDRESS}" -n "${NAMESPACE}" \
        --name "${name}" --type "${type}"
    echo "search attribute ${name} (${type}) created"
done
