# Sourced by the Python tests (not a test itself): the virtualenv they share,
# cached next to $CREMA_TMP (build/python-venv, its CMake build in
# build/python-cmake), with the crema package installed from ./python and
# reinstalled only when its sources change. Set ROOT, PY, CACHE and TMP
# first; gives VENV and VPY. Each function prints what failed and returns
# non-zero.
VENV=$CACHE/python-venv
VPY=$VENV/bin/python
export CREMA_CMAKE_BUILD_DIR="$CACHE/python-cmake"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
unset CREMA_LIBRARY PYTHONPATH

# The venv (it sees the system's numpy, which scripts/deps.sh installs, so no
# network is needed once setuptools is new enough to build wheels itself).
venv_create() {
  if ! "$VPY" -c "import sys" 2>/dev/null; then
    rm -rf "$VENV"
    "$PY" -m venv --system-site-packages "$VENV" >"$TMP/venv.log" 2>&1 \
      || { cat "$TMP/venv.log"; echo "FAIL python3 -m venv (Debian: python3-venv)"; return 1; }
    echo "ok   python3 -m venv"
  fi
  if ! "$VPY" -c "import setuptools, sys; sys.exit(tuple(int(x) for x in setuptools.__version__.split('.')[:2]) < (70, 1))" 2>/dev/null; then
    "$VPY" -m pip install -q --disable-pip-version-check "setuptools>=70.1" >"$TMP/pip.log" 2>&1 \
      || { cat "$TMP/pip.log"; echo "FAIL setuptools>=70.1 in the venv (from PyPI)"; return 1; }
  fi
  venv_pip numpy numpy
}

# venv_pip MODULE SPEC: pip installs SPEC (from PyPI) when MODULE does not import.
venv_pip() {
  "$VPY" -c "import $1" 2>/dev/null && return 0
  "$VPY" -m pip install -q --disable-pip-version-check "$2" >"$TMP/pip.log" 2>&1 \
    || { cat "$TMP/pip.log"; echo "FAIL $2 in the venv (from PyPI)"; return 1; }
  echo "ok   pip install $2"
}

# Installs ./python when anything that goes into the package changed (or it
# does not import); VENV_REINSTALLED=1 when it did.
venv_install_crema() {
  VENV_REINSTALLED=0
  stamp=$(cd "$ROOT" && find python/crema python/setup.py python/crema_build.py python/pyproject.toml \
            setup.py pyproject.toml CMakeLists.txt include src -type f ! -name '*.pyc' | sort \
            | xargs cat | cksum)
  if [ "$(cat "$VENV/crema.stamp" 2>/dev/null)" = "$stamp" ] && "$VPY" -c "import crema" 2>/dev/null; then
    echo "ok   installed crema is current"
    return 0
  fi
  rm -f "$VENV/crema.stamp"
  if (cd "$ROOT" && "$VPY" -m pip install --disable-pip-version-check --no-build-isolation --no-deps \
        --force-reinstall ./python) >"$TMP/install.log" 2>&1; then
    echo "ok   pip install ./python"
    echo "$stamp" > "$VENV/crema.stamp"
    VENV_REINSTALLED=1
  else
    tail -40 "$TMP/install.log"; echo "FAIL pip install ./python"; return 1
  fi
}
