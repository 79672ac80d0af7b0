#!/bin/sh
# The JVM front end's overhead: the training loop inside the tasks (images/s
# of LeNet on Fashion-MNIST, the train LMDB, batch 64 per rank, 2 ranks on
# local-cluster[2,1,2048]) driven by the JVM (spark-submit --class
# com.yahoo.ml.caffe.CaffeOnSpark build/jvm/crema.jar) against crema.spark on
# the same job. Rounds alternate which goes first, so that load on the
# machine falls on both. First, without Spark: the same loop in one process
# (bench/jvm: a batch of the LMDB fed to the MemoryData layer, one solver
# step) through JNI from Java and through crema.spark's own feeder (ctypes).
#   sh bench/bench_spark_jvm.sh [build-dir] [iterations] [rounds]
set -u
BUILD=${1:-build}
ITERS=${2:-600}
ROUNDS=${3:-2}
ROOT=$(pwd)
BIN=$ROOT/$BUILD/bin/crema
JAR=$ROOT/$BUILD/jvm/crema.jar
[ -x "$BIN" ] && [ -f "$JAR" ] || { echo "build crema and the jar first (make jar)"; exit 1; }
python3 -c "import pyspark, pyarrow" 2>/dev/null || { echo "pyspark/pyarrow missing: sh scripts/deps.sh"; exit 1; }
TMP=$(mktemp -d /tmp/crema-bench-jvm.XXXXXX)
trap 'rm -rf "$TMP"' EXIT INT TERM
export OPENBLAS_NUM_THREADS=1 CREMA_LIBRARY=$ROOT/$BUILD/lib/libcrema.so PYTHONPATH=$ROOT/python
export PYSPARK_PYTHON=python3 SPARK_LOCAL_IP=127.0.0.1
FM=/usr/share/datasets/fashion-mnist
cd "$TMP" || exit 1
"$BIN" convert-mnist $FM/train-images-idx3-ubyte.gz $FM/train-labels-idx1-ubyte.gz fm_train_lmdb >/dev/null || exit 1
echo "LeNet, Fashion-MNIST LMDB, batch 64 per rank, 2 ranks, $ITERS iterations, $(nproc) cores, OPENBLAS_NUM_THREADS=1"

python3 - "$ROOT" "$JAR" "$ITERS" "$ROUNDS" <<'PY'
import os, re, subprocess, sys
root, jar, iters, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, os.path.join(root, "tests", "jvm"))
import test_jvm as T
import pyspark
T.write_net("net.prototxt", T.memory_layer("TRAIN", "com.yahoo.ml.caffe.LMDB", "file:" + os.path.abspath("fm_train_lmdb"), 64), "")
T.write_solver("solver.prototxt", "net.prototxt", iters)
submit = os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-submit")
master = "local-cluster[2,1,2048]"
common = ["--conf", "spark.ui.enabled=false", "--conf", "spark.ui.showConsoleProgress=false",
          "--conf", "spark.executorEnv.OPENBLAS_NUM_THREADS=1"]
py = r'''
import os, sys
from pyspark.sql import SparkSession
from crema.spark import CaffeOnSpark, Config, DataSource
spark = (SparkSession.builder.master(sys.argv[1]).config("spark.executorEnv.OPENBLAS_NUM_THREADS", "1")
         .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
         .config("spark.executorEnv.PYTHONPATH", os.environ["PYTHONPATH"])
         .config("spark.executorEnv.CREMA_LIBRARY", os.environ["CREMA_LIBRARY"]).getOrCreate())
conf = Config(spark, ["-conf", "solver.prototxt", "-model", "file:%s/py/m.caffemodel" % os.getcwd(), "-train",
                      "-clusterSize", "2"])
cos = CaffeOnSpark(spark)
cos.train(DataSource(spark).getSource(conf, True))
s = cos.last_train_stats
print("training loop: %d images in %.2f s" % (s["images"], s["seconds"]))
spark.stop()
'''
with open("py_train.py", "w") as f:
    f.write(py)
# ---- the loop alone, one rank, no Spark ----
T.write_net("net_mem.prototxt", 'layer { name: "data" type: "MemoryData" top: "data" top: "label"\n'
            '  memory_data_param { batch_size: 64 channels: 1 height: 28 width: 28 } }\n', "")
T.write_solver("solver_mem.prototxt", "net_mem.prototxt", iters)
lmdb = os.path.abspath("fm_train_lmdb")
T.write("reader.prototxt", 'name: "reader"\nlayer { name: "data" type: "Data" top: "data" top: "label"\n'
        '  transform_param { scale: 0.00390625 }\n  data_param { source: "%s" batch_size: 64 backend: LMDB } }\n'
        % lmdb)
here = os.path.join(root, "bench", "jvm")
subprocess.run(["javac", "-d", ".", "-cp", jar, os.path.join(here, "Loop.java")], check=True)
for r in range(rounds):
    got = {}
    for who, cmd in (("jvm", ["java", "-cp", jar + ":.", "Loop", "solver_mem.prototxt", "reader.prototxt", str(iters)]),
                     ("python", [sys.executable, os.path.join(here, "loop.py"), "solver_mem.prototxt", lmdb, str(iters)])):
        p = subprocess.run(cmd, capture_output=True, text=True)
        m = re.search(r"loop: (\d+) images in ([0-9.]+) s", p.stdout)
        if p.returncode or not m:
            print("%s loop failed:\n%s" % (who, (p.stdout + p.stderr)[-2000:]))
            sys.exit(1)
        got[who] = int(m.group(1)) / float(m.group(2))
    print("round %d, one rank, no Spark: JNI %7.0f images/s, ctypes %7.0f images/s: JNI %+.1f%%"
          % (r + 1, got["jvm"], got["python"], 100 * (got["python"] / got["jvm"] - 1)), flush=True)

rates = {"jvm": [], "python": []}
for r in range(rounds):
    for who in (("jvm", "python") if r % 2 == 0 else ("python", "jvm")):
        if who == "jvm":
            cmd = [submit, "--master", master] + common + ["--class", "com.yahoo.ml.caffe.CaffeOnSpark", jar,
                   "-train", "-conf", "solver.prototxt", "-clusterSize", "2", "-model",
                   "file:%s/jvm/m.caffemodel" % os.getcwd()]
        else:
            cmd = [sys.executable, "py_train.py", master]
        p = subprocess.run(cmd, capture_output=True, text=True)
        m = re.search(r"training loop: (\d+) images in ([0-9.]+) s", p.stdout + p.stderr)
        if p.returncode or not m:
            print("%s failed (rc %d):\n%s" % (who, p.returncode, (p.stdout + p.stderr)[-3000:]))
            sys.exit(1)
        rate = int(m.group(1)) / float(m.group(2))
        rates[who].append(rate)
        print("round %d %-6s training loop %7.0f images/s (%s images in %s s)" % (r + 1, who, rate, m.group(1), m.group(2)),
              flush=True)
for who in ("jvm", "python"):
    print("%-6s best %7.0f images/s, mean %7.0f" % (who, max(rates[who]), sum(rates[who]) / len(rates[who])))
best_j, best_p = max(rates["jvm"]), max(rates["python"])
print("JVM training loop vs crema.spark's: %+.1f%% (best of %d rounds each; > 0: the JVM is slower)"
      % (100 * (best_p / best_j - 1), rounds))
PY
