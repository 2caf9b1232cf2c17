#!/usr/bin/env bash
# Create (idempotently) a separate virtual environment holding DAPPER, the reference
# data-assimilation library, for the peer benchmark in dapper_peer.py. latentda itself
# never depends on DAPPER; this venv lives in benchmarks/.dapper-venv (git-ignored).
#
# Usage:  bash benchmarks/dapper_venv.sh          # prints the venv's python on the last line
#         "$(bash benchmarks/dapper_venv.sh | tail -n 1)" benchmarks/dapper_peer.py
# Env:    PYTHON (interpreter used to create the venv, default python3)
#         DAPPER_SPEC (pip requirement, default "dapper")
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${here}/.dapper-venv"
py="${venv}/bin/python"
spec="${DAPPER_SPEC:-dapper}"

die() {
    echo "dapper_venv.sh: ERROR: $*" >&2
    exit 1
}

if [[ ! -x "${py}" ]]; then
    echo "creating venv at ${venv}" >&2
    "${PYTHON:-python3}" -m venv "${venv}" \
        || die "could not create venv at ${venv} (is python3-venv installed?)"
fi

if "${py}" -c "import dapper" >/dev/null 2>&1; then
    echo "dapper already installed in ${venv}" >&2
else
    echo "installing ${spec} into ${venv}" >&2
    # Drop pip's noise about this machine's absent local index folders; keep real errors.
    set +e
    "${py}" -m pip install --quiet "${spec}" 2>&1 \
        | grep -v "^WARNING: Location 'file://.*' is ignored" >&2
    rc="${PIPESTATUS[0]}"
    set -e
    [[ "${rc}" -eq 0 ]] || die "pip install '${spec}' failed in ${venv} (exit ${rc})"
    "${py}" -c "import dapper" >/dev/null 2>&1 \
        || die "'import dapper' fails in ${venv} after installation"
fi

# DAPPER must not drag torch in (the machine's pip config only caps it; we want none).
if "${py}" -m pip show torch >/dev/null 2>&1; then
    echo "dapper_venv.sh: WARNING: torch is installed in ${venv} (not needed)" >&2
fi

ver="$("${py}" -m pip show dapper 2>/dev/null | sed -n 's/^Version: //p')"
echo "dapper ${ver:-?} ready" >&2
echo "${py}"
