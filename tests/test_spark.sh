#!/bin/sh
# crema.spark on real PySpark (local-cluster[2,1,2048], Java 17): installs the
# package into the cached venv of tests/test_python.sh (build/python-venv,
# which sees the system's pyspark and pyarrow from scripts/deps.sh), then runs
# python/tests/test_spark.py: too few slots, ImageDataFrame (trainWithValidation,
# features accuracy, test() against `crema test`), LMDB, SequenceFile,
# CoSData, and recovery after a killed rank. CREMA_SPARK_ITERS sets the
# ImageDataFrame run's iterations (default 2000: accuracy >= 0.87).
set -u
. "$(dirname "$0")/python_env.sh"
TMP=$TMPBASE/spark.$$
BIN=${CREMA_BIN:-$ROOT/build/bin/crema}
[ -x "$BIN" ] || BIN=$CACHE/bin/crema
rm -rf "$TMP"; mkdir -p "$TMP"
finish() { rc=$1; [ "$rc" -eq 0 ] && rm -rf "$TMP"; exit "$rc"; }

if ! command -v java >/dev/null 2>&1; then echo "FAIL java is missing (scripts/deps.sh installs openjdk-17-jre-headless)"; finish 1; fi
if ! "$PY" -c "import pyspark, pyarrow" 2>/dev/null; then
  echo "FAIL pyspark/pyarrow missing (scripts/deps.sh installs them)"; finish 1
fi
python_env_setup "$TMP" || finish 1

# Spark's workers start Python from the venv; every test runs outside the tree.
export PYSPARK_PYTHON="$VPY" PYSPARK_DRIVER_PYTHON="$VPY" OPENBLAS_NUM_THREADS=1
export SPARK_LOCAL_IP=127.0.0.1
cd "$TMP" || finish 1
env -u LD_LIBRARY_PATH "$VPY" "$ROOT/python/tests/test_spark.py" "$TMP/work" "$BIN" \
    --iters "${CREMA_SPARK_ITERS:-2000}" --short "${CREMA_SPARK_SHORT:-200}" 2>"$TMP/spark.log"
rc=$?
if [ $rc -ne 0 ]; then echo "--- last lines of the Spark log:"; tail -40 "$TMP/spark.log"; fi
finish $rc
