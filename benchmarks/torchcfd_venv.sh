#!/usr/bin/env bash
# Create (idempotently) a separate virtual environment holding torch-cfd (Shuhao Cao's PyTorch
# port of jax-cfd's spectral Navier-Stokes solver), the peer of the Kolmogorov benchmark in
# systems_speed.py / torchcfd_peer.py. latentda itself never depends on torch-cfd; this venv
# lives in benchmarks/.torchcfd-venv (git-ignored).
#
# torch is installed first, pinned to the CPU build this machine holds (torch==2.13.0 from
# /opt/wheels), so that torch-cfd's "torch>=2.5" requirement cannot pull a CUDA build.
#
# Usage:  bash benchmarks/torchcfd_venv.sh          # prints the venv's python on the last line
#         "$(bash benchmarks/torchcfd_venv.sh | tail -n 1)" benchmarks/torchcfd_peer.py
# Env:    PYTHON (interpreter used to create the venv, default python3)
#         TORCHCFD_SPEC (pip requirement, default "torch-cfd==0.2.6")
#         TORCH_SPEC (default "torch==2.13.0")
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${here}/.torchcfd-venv"
py="${venv}/bin/python"
spec="${TORCHCFD_SPEC:-torch-cfd==0.2.6}"
torch_spec="${TORCH_SPEC:-torch==2.13.0}"

die() {
    echo "torchcfd_venv.sh: ERROR: $*" >&2
    exit 1
}

pip_install() {
    # Drop pip's noise about this machine's absent local index folders; keep real errors.
    set +e
    "${py}" -m pip install --quiet "$@" 2>&1 \
        | grep -v "^WARNING: Location 'file://.*' is ignored" >&2
    local rc="${PIPESTATUS[0]}"
    set -e
    [[ "${rc}" -eq 0 ]] || die "pip install $* failed in ${venv} (exit ${rc})"
}

if [[ ! -x "${py}" ]]; then
    echo "creating venv at ${venv}" >&2
    "${PYTHON:-python3}" -m venv "${venv}" \
        || die "could not create venv at ${venv} (is python3-venv installed?)"
fi

if ! "${py}" -c "import torch" >/dev/null 2>&1; then
    echo "installing ${torch_spec} into ${venv}" >&2
    pip_install "${torch_spec}"
fi
case "$("${py}" -c 'import torch; print(torch.version.cuda or "cpu")')" in
    cpu) ;;
    *) die "torch in ${venv} is a CUDA build; remove the venv and rerun" ;;
esac

if "${py}" -c "import torch_cfd.spectral" >/dev/null 2>&1; then
    echo "torch-cfd already installed in ${venv}" >&2
else
    echo "installing ${spec} into ${venv}" >&2
    pip_install "${spec}" "${torch_spec}"
    "${py}" -c "import torch_cfd.spectral" >/dev/null 2>&1 \
        || die "'import torch_cfd.spectral' fails in ${venv} after installation"
fi

ver="$("${py}" -m pip show torch-cfd 2>/dev/null | sed -n 's/^Version: //p')"
tv="$("${py}" -c 'import torch; print(torch.__version__)')"
echo "torch-cfd ${ver:-?} (torch ${tv}) ready" >&2
echo "${py}"
