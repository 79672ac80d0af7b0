# Sourced by tests that need the crema package installed: the cached venv
# of tests/test_python.sh (build/python-venv, which sees the system's
# pyspark and pyarrow from scripts/deps.sh), reinstalled when the sources
# change (the same stamp as tests/test_python.sh and tests/test_spark.sh).
# Needs ROOT, PY, CACHE, TMP; sets VPY, or returns 1 with the reason printed.
crema_venv() {
  VENV=$CACHE/python-venv
  export CREMA_CMAKE_BUILD_DIR="$CACHE/python-cmake"
  export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
  unset CREMA_LIBRARY PYTHONPATH
  if ! "$VENV/bin/python" -c "import sys" 2>/dev/null; then
    rm -rf "$VENV"
    "$PY" -m venv --system-site-packages "$VENV" >"$TMP/venv.log" 2>&1 || { cat "$TMP/venv.log"; echo "FAIL venv"; return 1; }
  fi
  VPY=$VENV/bin/python
  if ! "$VPY" -c "import setuptools, sys; sys.exit(tuple(int(x) for x in setuptools.__version__.split('.')[:2]) < (70, 1))" 2>/dev/null; then
    "$VPY" -m pip install -q --disable-pip-version-check "setuptools>=70.1" >"$TMP/pip.log" 2>&1 \
      || { cat "$TMP/pip.log"; echo "FAIL setuptools>=70.1 in the venv"; return 1; }
  fi
  stamp=$(cd "$ROOT" && find python/crema python/setup.py python/crema_build.py python/pyproject.toml \
            setup.py pyproject.toml CMakeLists.txt include src -type f ! -name '*.pyc' | sort \
            | xargs cat | cksum)
  if [ "$(cat "$VENV/crema.stamp" 2>/dev/null)" != "$stamp" ] || ! "$VPY" -c "import crema.spark" 2>/dev/null; then
    rm -f "$VENV/crema.stamp"
    if "$VPY" -m pip install --disable-pip-version-check --no-build-isolation --no-deps --force-reinstall \
         ./python >"$TMP/install.log" 2>&1; then
      echo "ok   pip install ./python"; echo "$stamp" > "$VENV/crema.stamp"
    else tail -40 "$TMP/install.log"; echo "FAIL pip install ./python"; return 1; fi
  fi
  return 0
}
