#!/bin/sh
# CaffeOnSpark's Python users' code on crema: its own Python API test
# (caffe-grid/src/test/python/PythonApiTest.py, run as its PythonTest.sh ran
# it: spark-submit --master local, the prototxts with --files, the flags in
# spark.pythonargs, from the resources directory) and its example
# MultiClassLogisticRegression.py, both rewritten in tests/cos_python/ with
# the same imports (com.yahoo.ml.caffe.*), calls, order, flags and checks,
# on the package installed in the cached venv (tests/python_env.sh),
# Fashion-MNIST standing in for MNIST.
#
# What differs from CaffeOnSpark's, and why:
#  - Python 3: itertools.zip_longest for izip_longest, zip_longest's
#    fillvalue as a keyword after *args, `lambda ri: ri[1] == ...` for the
#    Python 2 tuple parameter `lambda (row, index): index == ...`.
#  - test()'s accuracy is a list (CaffeOnSpark's too: a Scala Seq[Double]);
#    Python 2 compared the list with 0.9 (always true), Python 3 refuses:
#    its one value is compared.
#  - Spark 3: spark.pythonargs is read from sc.getConf(), since a SparkConf()
#    made before the context no longer sees spark-submit's --conf values;
#    DataFrame.map (gone since Spark 2) is DataFrame.rdd.map in the example.
#  - Spark 3 runs the workers' Python from PYSPARK_PYTHON (the venv); the
#    job's jar, library path and --py-files of PythonTest.sh are not needed:
#    the pip-installed package carries the library.
#  - Fashion-MNIST for MNIST: the bars of the checks are Fashion-MNIST's
#    (see the numbers in PythonApiTest.py); the TEST layer reads the test
#    LMDB (CaffeOnSpark's resource pointed it at the train LMDB), 10000
#    records instead of 60000.
#  - The example printed nothing: the checks at its end are this test's.
set -u
. "$(dirname "$0")/python_env.sh"
TMP=$TMPBASE/cos_python.$$
BIN=${CREMA_BIN:-$ROOT/build/bin/crema}
[ -x "$BIN" ] || BIN=$CACHE/bin/crema
rm -rf "$TMP"; mkdir -p "$TMP"
if ! command -v java >/dev/null 2>&1; then echo "FAIL java is missing (scripts/deps.sh installs it)"; fails=1; finish; fi
python_env_setup "$TMP" || { fails=1; finish; }
DATA=$(python_env_lmdbs "$BIN") || { echo "FAIL crema convert-mnist"; fails=1; finish; }
SUBMIT=$("$VPY" -c "import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), 'bin', 'spark-submit'))")

RES=$TMP/resources
mkdir -p "$RES/data"
cp "$ROOT"/tests/cos_python/*.prototxt "$RES/"
ln -s "$DATA/fashion_mnist_train_lmdb" "$RES/data/fashion_mnist_train_lmdb"
ln -s "$DATA/fashion_mnist_test_lmdb" "$RES/data/fashion_mnist_test_lmdb"
export PYSPARK_PYTHON="$VPY" PYSPARK_DRIVER_PYTHON="$VPY" OPENBLAS_NUM_THREADS=1 SPARK_LOCAL_IP=127.0.0.1

cd "$RES" || { fails=1; finish; }
# PythonTest.sh's command: -model file:////tmp/lenet.model there
if env -u LD_LIBRARY_PATH "$SUBMIT" --master local \
     --files "$RES/lenet_memory_solver_py.prototxt,$RES/lenet_memory_train_test_py.prototxt" \
     --conf spark.pythonargs="-conf lenet_memory_solver_py.prototxt -model file:///$TMP/lenet.model -features accuracy,ip1,ip2 -label label -output file:///$TMP/output -devices 1 -outputFormat json -clusterSize 1" \
     "$ROOT/tests/cos_python/PythonApiTest.py" >"$TMP/api.log" 2>&1; then
  echo "ok   CaffeOnSpark's PythonApiTest (testTrain, testTrainWithValidation)"
else
  fails=$((fails + 1)); echo "FAIL CaffeOnSpark's PythonApiTest"
fi
grep -v " INFO " "$TMP/api.log" | grep -E "^(Ran|OK|FAILED|AssertionError|Traceback|  File|[A-Za-z]*Error)|\.\.\. (ok|FAIL|ERROR)|^test\(\)|^validation rows"

if env -u LD_LIBRARY_PATH "$SUBMIT" --master "local[1]" \
     --conf spark.pythonargs="-conf lenet_memory_solver_py.prototxt -model file:///$TMP/lenet_lr.model -features ip1 -label label -devices 1 -clusterSize 1" \
     "$ROOT/tests/cos_python/MultiClassLogisticRegression.py" >"$TMP/lr.log" 2>&1; then
  echo "ok   CaffeOnSpark's example MultiClassLogisticRegression.py"
else
  fails=$((fails + 1)); echo "FAIL CaffeOnSpark's example MultiClassLogisticRegression.py"; tail -30 "$TMP/lr.log"
fi
grep -E "^MultiClassLogisticRegression:" "$TMP/lr.log"
cd "$ROOT" || true
finish
