#!/bin/sh
# crema.spark on real PySpark (local-cluster[2,1,2048], Java 17): installs the
# package into the cached venv of tests/test_python.sh (build/python-venv,
# which sees the system's pyspark and pyarrow from scripts/deps.sh), then runs
# python/tests/test_spark.py: too few slots, ImageDataFrame (trainWithValidation,
# features accuracy, test() against `crema test`), LMDB, SequenceFile,
# CoSData, and recovery after a killed rank. CREMA_SPARK_ITERS sets the
# ImageDataFrame run's iterations (default 2000: accuracy >= 0.87).
set -u
ROOT=$(pwd)
PY=${PYTHON:-python3}
TMPBASE=${CREMA_TMP:-build/tmp}
mkdir -p "$TMPBASE"
TMPBASE=$(cd "$TMPBASE" && pwd)
CACHE=$(dirname "$TMPBASE")
VENV=$CACHE/python-venv
TMP=$TMPBASE/spark.$$
BIN=${CREMA_BIN:-$ROOT/build/bin/crema}
[ -x "$BIN" ] || BIN=$CACHE/bin/crema
rm -rf "$TMP"; mkdir -p "$TMP"
finish() { rc=$1; [ "$rc" -eq 0 ] && rm -rf "$TMP"; exit "$rc"; }

if ! command -v java >/dev/null 2>&1; then echo "FAIL java is missing (scripts/deps.sh installs openjdk-17-jre-headless)"; finish 1; fi
if ! "$PY" -c "import pyspark, pyarrow" 2>/dev/null; then
  echo "FAIL pyspark/pyarrow missing (scripts/deps.sh installs them)"; finish 1
fi

# The venv and package install of tests/test_python.sh (same cache, same stamp).
export CREMA_CMAKE_BUILD_DIR="$CACHE/python-cmake"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
unset CREMA_LIBRARY PYTHONPATH
if ! "$VENV/bin/python" -c "import sys" 2>/dev/null; then
  rm -rf "$VENV"
  "$PY" -m venv --system-site-packages "$VENV" >"$TMP/venv.log" 2>&1 || { cat "$TMP/venv.log"; echo "FAIL venv"; finish 1; }
fi
VPY=$VENV/bin/python
if ! "$VPY" -c "import setuptools, sys; sys.exit(tuple(int(x) for x in setuptools.__version__.split('.')[:2]) < (70, 1))" 2>/dev/null; then
  "$VPY" -m pip install -q --disable-pip-version-check "setuptools>=70.1" >"$TMP/pip.log" 2>&1 \
    || { cat "$TMP/pip.log"; echo "FAIL setuptools>=70.1 in the venv"; finish 1; }
fi
stamp=$(cd "$ROOT" && find python/crema python/setup.py python/crema_build.py python/pyproject.toml \
          setup.py pyproject.toml CMakeLists.txt include src -type f ! -name '*.pyc' | sort \
          | xargs cat | cksum)
if [ "$(cat "$VENV/crema.stamp" 2>/dev/null)" != "$stamp" ] || ! "$VPY" -c "import crema.spark" 2>/dev/null; then
  rm -f "$VENV/crema.stamp"
  if "$VPY" -m pip install --disable-pip-version-check --no-build-isolation --no-deps --force-reinstall \
       ./python >"$TMP/install.log" 2>&1; then
    echo "ok   pip install ./python"; echo "$stamp" > "$VENV/crema.stamp"
  else tail -40 "$TMP/install.log"; echo "FAIL pip install ./python"; finish 1; fi
fi

# Spark's workers start Python from the venv; every test runs outside the tree.
export PYSPARK_PYTHON="$VPY" PYSPARK_DRIVER_PYTHON="$VPY" OPENBLAS_NUM_THREADS=1
export SPARK_LOCAL_IP=127.0.0.1
cd "$TMP" || finish 1
env -u LD_LIBRARY_PATH "$VPY" "$ROOT/python/tests/test_spark.py" "$TMP/work" "$BIN" \
    --iters "${CREMA_SPARK_ITERS:-2000}" --short "${CREMA_SPARK_SHORT:-200}" 2>"$TMP/spark.log"
rc=$?
if [ $rc -ne 0 ]; then echo "--- last lines of the Spark log:"; tail -40 "$TMP/spark.log"; fi
finish $rc
