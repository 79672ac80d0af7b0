#!/bin/sh
# The Python package end to end: a virtualenv, `pip install ./python` (its
# build step builds libcrema with CMake and ships it inside the package), a
# wheel from the repository root, then python/tests/test_net.py run from
# outside the tree with LD_LIBRARY_PATH unset. The venv and the CMake build
# are kept next to $CREMA_TMP (build/python-venv, build/python-cmake) and
# reinstalled only when the sources change.
set -u
ROOT=$(pwd)
PY=${PYTHON:-python3}
SHARED=$(cd "${CREMA_SHARED:-../shared}" && pwd)
TMPBASE=${CREMA_TMP:-build/tmp}
mkdir -p "$TMPBASE"
TMPBASE=$(cd "$TMPBASE" && pwd)
CACHE=$(dirname "$TMPBASE")
VENV=$CACHE/python-venv
TMP=$TMPBASE/python.$$
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }
finish() { rm -rf "$TMP"; echo "$fails failed"; [ $fails -eq 0 ]; exit $?; }
rm -rf "$TMP"; mkdir -p "$TMP"
export CREMA_CMAKE_BUILD_DIR="$CACHE/python-cmake"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
unset CREMA_LIBRARY PYTHONPATH

# A venv that sees the system's numpy (scripts/deps.sh installs it), so no
# network is needed once setuptools is new enough to build wheels itself.
if ! "$VENV/bin/python" -c "import sys" 2>/dev/null; then
  rm -rf "$VENV"
  if "$PY" -m venv --system-site-packages "$VENV" >"$TMP/venv.log" 2>&1; then ok "python3 -m venv"
  else cat "$TMP/venv.log"; bad "python3 -m venv (Debian: python3-venv)"; finish; fi
fi
VPY=$VENV/bin/python
if ! "$VPY" -c "import setuptools, sys; sys.exit(tuple(int(x) for x in setuptools.__version__.split('.')[:2]) < (70, 1))" 2>/dev/null; then
  "$VPY" -m pip install -q --disable-pip-version-check "setuptools>=70.1" >"$TMP/pip.log" 2>&1 \
    || { cat "$TMP/pip.log"; bad "setuptools>=70.1 in the venv (from PyPI)"; finish; }
fi
if ! "$VPY" -c "import numpy" 2>/dev/null; then
  "$VPY" -m pip install -q --disable-pip-version-check numpy >"$TMP/pip.log" 2>&1 \
    || { cat "$TMP/pip.log"; bad "numpy in the venv (from PyPI)"; finish; }
fi

# Reinstall when anything that goes into the package changed.
stamp=$(cd "$ROOT" && find python/crema python/setup.py python/crema_build.py python/pyproject.toml \
          setup.py pyproject.toml CMakeLists.txt include src -type f ! -name '*.pyc' | sort \
          | xargs cat | cksum)
if [ "$(cat "$VENV/crema.stamp" 2>/dev/null)" != "$stamp" ] \
   || ! "$VPY" -c "import crema" 2>/dev/null; then
  rm -f "$VENV/crema.stamp"
  if "$VPY" -m pip install --disable-pip-version-check --no-build-isolation --no-deps --force-reinstall \
       ./python >"$TMP/install.log" 2>&1; then
    ok "pip install ./python"
    echo "$stamp" > "$VENV/crema.stamp"
  else
    tail -40 "$TMP/install.log"; bad "pip install ./python"; finish
  fi
  # pip install . from the root builds the same package
  if "$VPY" -m pip wheel --disable-pip-version-check --no-build-isolation --no-deps -w "$TMP/wheel" . \
       >"$TMP/wheel.log" 2>&1 \
     && "$VPY" -c "import zipfile, glob, sys; n = zipfile.ZipFile(glob.glob(sys.argv[1] + '/crema-*.whl')[0]).namelist(); sys.exit(not ('crema/_lib/libcrema.so' in n and 'crema/net.py' in n))" "$TMP/wheel"
  then ok "pip wheel . (root) ships crema/_lib/libcrema.so"
  else tail -20 "$TMP/wheel.log"; bad "pip wheel . (root)"; fi
else
  ok "installed crema is current"
fi

# The shipped library: inside the venv, no run path into the source or build tree.
LIB=$(cd "$TMP" && env -u LD_LIBRARY_PATH "$VPY" -c "import crema; print(crema.library_path())")
case "$LIB" in
  "$VENV"/*/site-packages/crema/_lib/libcrema.so) ok "libcrema.so loaded from the package ($LIB)" ;;
  *) bad "libcrema.so loaded from $LIB, not from the venv's package" ;;
esac
if readelf -d "$LIB" | grep -E 'R(UN)?PATH' | grep -qF -e "$ROOT" -e "$CACHE"; then
  bad "libcrema.so has a run path into the tree: $(readelf -d "$LIB" | grep -E 'R(UN)?PATH')"
else ok "libcrema.so has no run path into the source or build tree"; fi
if env -u LD_LIBRARY_PATH ldd "$LIB" | grep -q "not found"; then
  bad "libcrema.so dependencies: $(env -u LD_LIBRARY_PATH ldd "$LIB" | grep 'not found')"
else ok "libcrema.so dependencies resolve without LD_LIBRARY_PATH"; fi

# The unit tests, from outside the tree, without LD_LIBRARY_PATH.
if (cd "$TMP" && env -u LD_LIBRARY_PATH CREMA_TEST_INSTALLED=1 CREMA_SHARED="$SHARED" CREMA_TMP="$TMP" \
      OPENBLAS_NUM_THREADS=1 "$VPY" "$ROOT/python/tests/test_net.py" 2>&1); then
  ok "python/tests/test_net.py"
else bad "python/tests/test_net.py"; fi

finish
