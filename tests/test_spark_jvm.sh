#!/bin/sh
# The JVM front end (com.yahoo.ml.caffe in build/jvm/crema.jar, over
# libcrema_jni) on real Spark and Hadoop's WebHdfsFileSystem client against
# tests/webhdfs_server.py: tests/jvm/test_jvm.py runs the README's Scala and
# Java programs, the command line (with rank 0's executor killed mid-snapshot),
# the same job through crema.spark with -model on HDFS, bad input and the
# tools. CREMA_JVM_ITERS sets the training runs' iterations (default 200).
set -u
. "$(dirname "$0")/python_env.sh"
TMP=$TMPBASE/jvm.$$
BIN=${CREMA_BIN:-$ROOT/build/bin/crema}
[ -x "$BIN" ] || BIN=$CACHE/bin/crema
rm -rf "$TMP"; mkdir -p "$TMP"
finish() { rc=$1; [ "$rc" -eq 0 ] && rm -rf "$TMP"; exit "$rc"; }

for tool in java javac jar protoc; do
  command -v $tool >/dev/null 2>&1 || { echo "FAIL $tool is missing (scripts/deps.sh installs it)"; finish 1; }
done
"$PY" -c "import pyspark, pyarrow" 2>/dev/null || { echo "FAIL pyspark/pyarrow missing (scripts/deps.sh)"; finish 1; }

# the jar (make jar builds it; this rebuilds only when a source changed)
sh "$ROOT/jvm/build.sh" "$CACHE" >"$TMP/jar.log" 2>&1 || { cat "$TMP/jar.log"; echo "FAIL jvm/build.sh"; finish 1; }
JAR=$CACHE/jvm/crema.jar

python_env_setup "$TMP" || finish 1

export OPENBLAS_NUM_THREADS=1 SPARK_LOCAL_IP=127.0.0.1
cd "$TMP" || finish 1
env -u LD_LIBRARY_PATH "$VPY" "$ROOT/tests/jvm/test_jvm.py" "$TMP/work" --bin "$BIN" --jar "$JAR" \
    --cache "$CACHE/jvm-data" --iters "${CREMA_JVM_ITERS:-200}" ${CREMA_JVM_ONLY:+--only "$CREMA_JVM_ONLY"}
finish $?
