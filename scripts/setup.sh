#!/usr/bin/env bash
# Set up catscreen on a fresh Debian machine: system libraries, a virtual environment in .venv,
# the CPU build of torch, catscreen with its extras, and GPAW (optional DFT engine).
# Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

# Python with venv and headers, a C++ compiler (GPAW), and GPAW's numerical libraries.
APT_PACKAGES="python3 python3-venv python3-dev g++ libxc-dev libopenblas-dev libfftw3-dev"
if command -v apt-get >/dev/null 2>&1 && ! dpkg -s $APT_PACKAGES >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq $APT_PACKAGES >/dev/null
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: catscreen needs Python >= 3.11; python3 is $(python3 -V 2>&1)" >&2
  exit 1
fi

# A venv whose pip works: Debian's venv leaves .venv/bin/python behind when ensurepip fails
# (python3-venv missing), and a rerun must not take that for a finished venv.
.venv/bin/python -m pip --version >/dev/null 2>&1 || python3 -m venv --clear .venv
PY=.venv/bin/python
$PY -m pip install -q --upgrade pip
# torch first, the CPU build: PyPI's torch wheel pulls the multi-GB CUDA libraries. A local
# wheel (pip's find-links) is used where there is one, else PyTorch's CPU index.
$PY -m pip install -q "torch==2.13.0+cpu" 2>/dev/null ||
  $PY -m pip install -q "torch==2.13.0+cpu" --index-url https://download.pytorch.org/whl/cpu
$PY -m pip install -q -e ".[dev]"

# GPAW from source against Debian's libxc/openblas/fftw, without MPI; gpaw-data brings the
# PAW setups so nothing is downloaded at run time.
if ! $PY -c "import gpaw" >/dev/null 2>&1; then
  cfg=$(mktemp --suffix=.py)
  cat >"$cfg" <<'CFG'
mpi = False
compiler = 'g++'  # GPAW >= 26 compiles its C sources as C++
libraries = ['xc', 'openblas', 'fftw3']
fftw = True
CFG
  $PY -m pip install -q setuptools wheel pybind11
  GPAW_CONFIG="$cfg" $PY -m pip install -q --no-build-isolation gpaw gpaw-data
  rm -f "$cfg"
fi
echo "catscreen is set up in .venv ($($PY -c 'import catscreen; print(catscreen.__version__)'))"
