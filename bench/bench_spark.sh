#!/bin/sh
# Spark's overhead: images/s of LeNet training on Fashion-MNIST (batch 64 per
# rank, 2 ranks) driven by crema.spark on local-cluster[2,1,2048] against
# `crema train -clusterSize 2` on the same data (the train LMDB; crema.spark
# also with the ImageDataFrame source). Two figures for Spark: the training
# loop inside the tasks (steady state), and the whole train() call (Spark
# job start, partitioning, rendezvous, model write).
#   sh bench/bench_spark.sh [build-dir] [iterations]
set -u
BUILD=${1:-build}
ITERS=${2:-600}
ROOT=$(pwd)
BIN=$ROOT/$BUILD/bin/crema
[ -x "$BIN" ] || { echo "build crema first (make)"; exit 1; }
python3 -c "import pyspark, pyarrow" 2>/dev/null || { echo "pyspark/pyarrow missing: sh scripts/deps.sh"; exit 1; }
TMP=$(mktemp -d /tmp/crema-bench-spark.XXXXXX)
trap 'rm -rf "$TMP"' EXIT INT TERM
export OPENBLAS_NUM_THREADS=1 CREMA_LIBRARY=$ROOT/$BUILD/lib/libcrema.so PYTHONPATH=$ROOT/python
export PYSPARK_PYTHON=python3 SPARK_LOCAL_IP=127.0.0.1
FM=/usr/share/datasets/fashion-mnist
cd "$TMP" || exit 1
"$BIN" convert-mnist $FM/train-images-idx3-ubyte.gz $FM/train-labels-idx1-ubyte.gz fm_train_lmdb >/dev/null || exit 1
echo "LeNet, Fashion-MNIST, batch 64 per rank, 2 ranks, $ITERS iterations, $(nproc) cores, OPENBLAS_NUM_THREADS=1"

python3 - "$BIN" "$ITERS" <<'PY'
import os, re, subprocess, sys, time
sys.path.insert(0, os.path.join(os.environ["PYTHONPATH"], "..", "python", "tests"))
import test_spark as T  # the test's net and solver writers
bin_, iters = sys.argv[1], int(sys.argv[2])
images = iters * 64 * 2

# crema train -clusterSize 2: Data layers on the same LMDB
with open("net_data.prototxt", "w") as f:
    f.write('name: "LeNet"\nlayer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN }\n'
            '  transform_param { scale: 0.00390625 } data_param { source: "fm_train_lmdb" batch_size: 64 backend: LMDB } }\n'
            + T.LAYERS.replace('layer { name: "accuracy"', '# layer { name: "accuracy"'))
T.write_solver("solver_data.prototxt", "net_data.prototxt", iters)
t0 = time.time()
p = subprocess.run([bin_, "train", "-solver", "solver_data.prototxt", "-clusterSize", "2"], capture_output=True, text=True)
wall = time.time() - t0
if p.returncode:
    print(p.stderr[-2000:]); sys.exit(1)
crema_rate = images / wall
print("crema train -clusterSize 2:            %7.0f images/s  (%.1f s)" % (crema_rate, wall))

from pyspark.sql import SparkSession
from crema.spark import CaffeOnSpark, Config, DataSource
from crema.spark.tools import images_table
import numpy as np, pyarrow.parquet as pq
x, y = T.idx(T.FM + "/train-images-idx3-ubyte.gz"), T.idx(T.FM + "/train-labels-idx1-ubyte.gz")
pq.write_table(images_table(np.arange(len(y)), y, x.reshape(-1, 1, 28, 28)), "fm_train.parquet")
spark = (SparkSession.builder.master("local-cluster[2,1,2048]").appName("bench")
         .config("spark.executorEnv.OPENBLAS_NUM_THREADS", "1").config("spark.ui.showConsoleProgress", "false")
         .config("spark.executorEnv.PYTHONPATH", os.environ["PYTHONPATH"])
         .config("spark.executorEnv.CREMA_LIBRARY", os.environ["CREMA_LIBRARY"]).getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
cos = CaffeOnSpark(spark)
for tag, cls, src in (("LMDB", "com.yahoo.ml.caffe.LMDB", "file:fm_train_lmdb"),
                      ("ImageDataFrame", "com.yahoo.ml.caffe.ImageDataFrame", "fm_train.parquet")):
    T.write_net("net_%s.prototxt" % tag, T.memory_layer("TRAIN", cls, src, 64), "")
    T.write_solver("solver_%s.prototxt" % tag, "net_%s.prototxt" % tag, iters)
    conf = Config(spark, ["-conf", "solver_%s.prototxt" % tag, "-model", "file:%s/spark_%s/m.caffemodel" % (os.getcwd(), tag),
                          "-train", "-clusterSize", "2"])
    t0 = time.time()
    cos.train(DataSource(spark).getSource(conf, True))
    wall = time.time() - t0
    s = cos.last_train_stats
    loop = s["images"] / s["seconds"]
    print("crema.spark %-15s training loop %7.0f images/s  overhead %+5.1f%%;  whole train() %7.0f images/s (%.1f s) %+5.1f%%"
          % (tag + ":", loop, 100 * (crema_rate / loop - 1), images / wall, wall, 100 * (crema_rate / (images / wall) - 1)))
spark.stop()
PY
