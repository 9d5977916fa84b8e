#!/usr/bin/env bash
# Set up catscreen on a fresh Debian machine: system libraries, a virtual environment in .venv,
# the CPU build of torch, catscreen with its extras, and GPAW (optional DFT engine).
# Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null 2>&1 && ! dpkg -s libxc-dev libopenblas-dev libfftw3-dev >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq libxc-dev libopenblas-dev libfftw3-dev >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
PY=.venv/bin/python
$PY -m pip install -q --upgrade pip
# torch first: a plain `torch` requirement would pull a multi-GB CUDA build.
$PY -m pip install -q torch==2.13.0
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
