"""crema.spark end to end on real PySpark (run by tests/test_spark.sh).

    test_spark.py WORKDIR CREMA_BIN [--iters N] [--only a,b]

Fashion-MNIST LeNet on local-cluster[2,1,2048] with clusterSize 2: the
ImageDataFrame source (features accuracy, test() against `crema test`),
LMDB, a SequenceFile written through Spark, the CoSData DataFrame source,
recovery after a rank's task is killed, and the too-few-slots error."""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np

from fm_lenet import FM, LAYERS, Tally, cos_layer, idx, memory_layer

ok = Tally()


def write_net(path, train_layer, test_layer):
    with open(path, "w") as f:
        f.write('name: "LeNet"\n' + train_layer + test_layer + LAYERS)


def write_solver(path, net, iters, snapshot=0, test_interval=0, prefix="lenet"):
    with open(path, "w") as f:
        f.write('net: "%s"\n%sbase_lr: 0.01\nmomentum: 0.9\n'
                'weight_decay: 0.0005\nlr_policy: "inv"\ngamma: 0.0001\npower: 0.75\ndisplay: 100\n'
                'max_iter: %d\nsnapshot: %d\nsnapshot_prefix: "%s"\nrandom_seed: 1\nsolver_mode: CPU\n'
                % (net, "test_iter: 50\ntest_interval: %d\n" % test_interval if test_interval else "", iters,
                   snapshot, prefix))


def accuracy_of(df):
    import pyarrow as pa
    t = pa.Table.from_batches(df._collect_as_arrow())
    ip2 = np.asarray(t.column("ip2").combine_chunks().flatten().to_numpy(), np.float32).reshape(t.num_rows, -1)
    # CaffeOnSpark's label column: one array<float> of one value per sample
    lab = np.asarray(t.column("label").combine_chunks().flatten().to_numpy(), np.float32)
    return t.num_rows, float(np.mean(np.argmax(ip2, 1) == lab)), t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("crema_bin")
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--short", type=int, default=200)
    ap.add_argument("--only", default="slots,imagedf,lmdb,seq,tools,cos,recovery")
    args = ap.parse_args()
    only = set(args.only.split(","))
    os.makedirs(args.work, exist_ok=True)
    os.chdir(args.work)
    w = os.getcwd()

    import pyarrow.parquet as pq
    from pyspark.sql import SparkSession

    from crema.spark import CaffeOnSpark, Config, DataSource
    from crema.spark.tools import dataframe_to_sequence, images_table

    # ---- data: Fashion-MNIST as ImageDataFrame parquet, LMDB for crema ----
    xtr, ytr = idx(FM + "/train-images-idx3-ubyte.gz"), idx(FM + "/train-labels-idx1-ubyte.gz")
    xte, yte = idx(FM + "/t10k-images-idx3-ubyte.gz"), idx(FM + "/t10k-labels-idx1-ubyte.gz")
    pq.write_table(images_table(np.arange(len(ytr)), ytr, xtr.reshape(-1, 1, 28, 28)), "fm_train.parquet")
    pq.write_table(images_table(np.arange(len(yte)), yte, xte.reshape(-1, 1, 28, 28)), "fm_test.parquet")
    for split, pre in (("train", "train"), ("test", "t10k")):
        if not os.path.exists("fm_%s_lmdb" % split):
            subprocess.run([args.crema_bin, "convert-mnist", "%s/%s-images-idx3-ubyte.gz" % (FM, pre),
                            "%s/%s-labels-idx1-ubyte.gz" % (FM, pre), "fm_%s_lmdb" % split], check=True,
                           stdout=subprocess.DEVNULL)

    env_keys = ("PYTHONPATH", "CREMA_LIBRARY")

    def session(master):
        b = (SparkSession.builder.master(master).appName("crema-spark-test")
             .config("spark.executorEnv.OPENBLAS_NUM_THREADS", "1")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false").config("spark.sql.shuffle.partitions", "2"))
        for k in env_keys:
            if os.environ.get(k):
                b = b.config("spark.executorEnv." + k, os.environ[k])
        return b.getOrCreate()

    # ---- too few slots: a clear error within seconds ----
    if "slots" in only:
        spark = session("local[1]")
        write_net("net_df.prototxt", memory_layer("TRAIN", "com.yahoo.ml.caffe.ImageDataFrame", "fm_train.parquet", 64),
                  memory_layer("TEST", "com.yahoo.ml.caffe.ImageDataFrame", "fm_test.parquet", 100))
        write_solver("solver_df.prototxt", "net_df.prototxt", 10)
        conf = Config(spark, ["-conf", "solver_df.prototxt", "-model", "file:%s/slots/m.caffemodel" % w, "-train",
                              "-clusterSize", "2"])
        t0 = time.time()
        try:
            CaffeOnSpark(spark).train(DataSource(spark).getSource(conf, True))
            ok(False, "clusterSize 2 on local[1] fails")
        except ValueError as e:
            dt = time.time() - t0
            ok("clusterSize 2" in str(e) and "1 task slots" in str(e) and dt < 10,
               "clusterSize 2 on local[1]: clear error within seconds", "%.1f s: %s" % (dt, e))
        spark.stop()
        # the same through the command line
        t0 = time.time()
        p = subprocess.run([sys.executable, "-m", "crema.spark", "-conf", "solver_df.prototxt", "-train", "-model",
                            "file:%s/slots/m.caffemodel" % w, "-clusterSize", "3", "--master",
                            "local-cluster[2,1,1024]"], capture_output=True, text=True, timeout=120)
        dt = time.time() - t0
        ok(p.returncode == 1 and "clusterSize 3 is larger than the 2 task slots" in p.stderr,
           "python -m crema.spark -clusterSize 3 on local-cluster[2,1,1024]: exit 1 with the reason",
           "%.1f s, rc %d: %s" % (dt, p.returncode, ([ln for ln in p.stderr.splitlines() if ln.startswith("crema.spark:")]
                                                  or ["no crema.spark line"])[-1]))

    spark = session("local-cluster[2,1,2048]")
    cos = CaffeOnSpark(spark)

    def train_and_check(tag, net, n_iters, min_acc, check_crema=False, test_interval=0, fail_at=None,
                        snapshot=0):
        d = os.path.join(w, tag)
        shutil.rmtree(d, ignore_errors=True)  # no snapshot of an earlier run to resume from
        os.makedirs(d)
        write_solver("solver_%s.prototxt" % tag, net, n_iters, snapshot=snapshot, test_interval=test_interval)
        model = "file:%s/lenet.caffemodel" % d
        conf = Config(spark, ["-conf", "solver_%s.prototxt" % tag, "-model", model, "-train", "-clusterSize", "2",
                              "-features", "ip2", "-label", "label"])
        if fail_at:
            os.environ["CREMA_SPARK_FAIL_AT"] = fail_at
        t0 = time.time()
        try:
            if test_interval:
                vdf = cos.trainWithValidation(DataSource(spark).getSource(conf, True),
                                              DataSource(spark).getSource(conf, False))
                vals = vdf.collect()
                # CaffeOnSpark's rows: iterations test_interval, 2 test_interval, ... below max_iter;
                # its columns: the test net's outputs, array<float> each
                ok(len(vals) == (n_iters - 1) // test_interval and vdf.columns == ["accuracy", "loss"]
                   and all(len(v.accuracy) == 1 and len(v.loss) == 1 for v in vals),
                   "%s: trainWithValidation gives CaffeOnSpark's rows and columns" % tag,
                   "%d rows, columns %s, last %s" % (len(vals), vdf.columns, vals[-1] if vals else None))
            else:
                cos.train(DataSource(spark).getSource(conf, True))
        finally:
            os.environ.pop("CREMA_SPARK_FAIL_AT", None)
        stats = getattr(cos, "last_train_stats", {})
        ok(os.path.exists(os.path.join(d, "lenet.caffemodel")), "%s: trained %d iterations on 2 ranks" % (tag, n_iters),
           "%.0f s in all, %.1f s training, %.0f images/s" % (time.time() - t0, stats.get("seconds", 0),
                                                             stats.get("images", 0) / max(stats.get("seconds", 1), 1e-9)))
        n, acc, _ = accuracy_of(cos.features(DataSource(spark).getSource(conf, False)))
        ok(n == 10000 and acc >= min_acc, "%s: features() gives one row per test sample, argmax accuracy >= %.2f"
           % (tag, min_acc), "%d rows, accuracy %.4f" % (n, acc))
        res = cos.test(DataSource(spark).getSource(conf, False))
        ok(abs(res["accuracy"][0] - acc) < 1e-6, "%s: test() accuracy equals the features' argmax accuracy" % tag,
           "test %.4f" % res["accuracy"][0])
        if check_crema:
            write_net("net_lmdb_test.prototxt", "",
                      'layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TEST }\n'
                      '  transform_param { scale: 0.00390625 }\n'
                      '  data_param { source: "fm_test_lmdb" batch_size: 100 backend: LMDB } }\n')
            p = subprocess.run([args.crema_bin, "test", "-model", "net_lmdb_test.prototxt", "-weights",
                                os.path.join(d, "lenet.caffemodel"), "-iterations", "100"],
                               capture_output=True, text=True)
            m = re.findall(r"accuracy = ([0-9.]+)", p.stdout + p.stderr)
            m2 = re.findall(r"loss = ([0-9.]+)", p.stdout + p.stderr)
            ca = float(m[-1]) if m else -1
            cl = float(m2[-1]) if m2 else -1
            ok(abs(ca - res["accuracy"][0]) < 1e-4 and abs(cl - res["loss"][0]) < 1e-3,
               "%s: test() agrees with `crema test` on the saved model" % tag,
               "crema test accuracy %.4f loss %.4f, test() %.4f %.4f" % (ca, cl, res["accuracy"][0], res["loss"][0]))
        return stats

    if "imagedf" in only:
        write_net("net_df.prototxt", memory_layer("TRAIN", "com.yahoo.ml.caffe.ImageDataFrame", "fm_train.parquet", 64),
                  memory_layer("TEST", "com.yahoo.ml.caffe.ImageDataFrame", "fm_test.parquet", 100))
        min_acc = 0.87 if args.iters >= 2000 else 0.70
        stats = train_and_check("imagedf", "net_df.prototxt", args.iters, min_acc, check_crema=True,
                                test_interval=args.iters // 4)
        with open(os.path.join(w, "imagedf_stats.json"), "w") as f:
            json.dump(stats, f)

    if "lmdb" in only:
        write_net("net_lmdb.prototxt", memory_layer("TRAIN", "com.yahoo.ml.caffe.LMDB", "file:fm_train_lmdb", 64),
                  memory_layer("TEST", "com.yahoo.ml.caffe.LMDB", "file:fm_test_lmdb", 100))
        train_and_check("lmdb", "net_lmdb.prototxt", args.short, 0.65)
        # the command line on the trained model: -features to parquet (with -test too, the
        # features only, as CaffeOnSpark's Config keeps the last of the two)
        out = os.path.join(w, "lmdb_features")
        p = subprocess.run([sys.executable, "-m", "crema.spark", "-features", "ip2", "-label", "label", "-test",
                            "-conf", "solver_lmdb.prototxt", "-model", "file:%s/lmdb/lenet.caffemodel" % w,
                            "-output", "file:" + out, "-outputFormat", "parquet", "-clusterSize", "2",
                            "--master", "local[2]"], capture_output=True, text=True, timeout=300)
        rows = None
        if p.returncode == 0:
            t = pq.read_table(out)
            rows = t.num_rows
            feat_cols = t.column_names
        ok(p.returncode == 0 and rows == 10000 and feat_cols == ["SampleID", "ip2", "label"]
           and "features only" in p.stderr and t.column("SampleID")[0].as_py() == "00000000",
           "python -m crema.spark -features ip2 -test -outputFormat parquet: 10000 rows keyed by the LMDB keys",
           "rc %d, %s rows, %s" % (p.returncode, rows, p.stdout.strip().splitlines()[-1] if p.stdout.strip()
                                   else p.stderr.strip()[-300:]))

    if "seq" in only:
        seq = os.path.join(w, "fm_train_seq")
        if not os.path.exists(os.path.join(seq, "_SUCCESS")):
            dataframe_to_sequence(spark.read.parquet("fm_train.parquet"), "file:" + seq)
        seqt = os.path.join(w, "fm_test_seq")
        if not os.path.exists(os.path.join(seqt, "_SUCCESS")):
            dataframe_to_sequence(spark.read.parquet("fm_test.parquet"), "file:" + seqt)
        write_net("net_seq.prototxt", memory_layer("TRAIN", "com.yahoo.ml.caffe.SeqImageDataSource", "file:" + seq, 64),
                  memory_layer("TEST", "com.yahoo.ml.caffe.SeqImageDataSource", "file:" + seqt, 100))
        train_and_check("seq", "net_seq.prototxt", args.short, 0.65)

    if "tools" in only:
        from crema.spark.sources import SeqImageDataSource
        from crema.spark.tools import images_to_sequence, lmdb_to_dataframe
        import pyarrow as pa
        t = pa.Table.from_batches(lmdb_to_dataframe(spark, "fm_test_lmdb", partitions=2)._collect_as_arrow())
        order = np.argsort(np.asarray(t.column("id").to_numpy(zero_copy_only=False), np.int64))
        labels = np.asarray(t.column("label").to_numpy(zero_copy_only=False)).astype(np.int64)[order]
        first = np.frombuffer(t.column("data")[int(order[0])].as_py(), np.uint8)
        ok(t.num_rows == 10000 and (labels == yte).all() and (first == xte[0].reshape(-1)).all(),
           "tools: LMDB2DataFrame gives every record (labels and pixels as in the LMDB)", "%d rows" % t.num_rows)
        # Binary2Sequence: 3 PNG files and a label file, read back as SeqImageDataSource rows
        os.makedirs("imgs", exist_ok=True)
        import struct
        import zlib

        def png(a):
            raw = b"".join(b"\x00" + a[i].tobytes() for i in range(a.shape[0]))

            def chunk(tag, d):
                return struct.pack(">I", len(d)) + tag + d + struct.pack(">I", zlib.crc32(tag + d) & 0xffffffff)
            return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0)) +
                    chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
        with open("labels.txt", "w") as lf:
            for i in range(3):
                with open("imgs/%d.png" % i, "wb") as f:
                    f.write(png(xte[i]))
                lf.write("%d.png %d\n" % (i, yte[i]))
        seqdir = os.path.join(w, "png_seq")
        shutil.rmtree(seqdir, ignore_errors=True)
        images_to_sequence(spark, "imgs", "labels.txt", "file:" + seqdir, partitions=1)
        src = SeqImageDataSource(spark, None, 'name: "data" memory_data_param { source: "file:%s" channels: 1 '
                                 'height: 28 width: 28 batch_size: 1 }' % seqdir, True)
        rows = sorted(src.image_dataframe(spark).collect(), key=lambda r: r.id)
        ok(len(rows) == 3 and [r.label for r in rows] == [float(y) for y in yte[:3]] and all(r.encoded for r in rows)
           and bytes(rows[0].data) == png(xte[0]),
           "tools: Binary2Sequence files read back by SeqImageDataSource (ids, labels, encoded bytes)",
           "%d rows" % len(rows))
        from crema.spark.tools import images_to_dataframe
        rows = sorted(images_to_dataframe(spark, "imgs", "labels.txt", partitions=1).collect(), key=lambda r: r.id)
        ok(len(rows) == 3 and [r.label for r in rows] == [str(y) for y in yte[:3]] and bytes(rows[2].data) == png(xte[2]),
           "tools: Binary2DataFrame rows follow the ImageDataFrame contract", "%d rows" % len(rows))

    if "cos" in only:
        for split, x, y in (("train", xtr, ytr), ("test", xte, yte)):
            t = images_table(np.arange(len(y)), y, x.reshape(-1, 1, 28, 28))
            t = t.select(["id", "data"]).append_column("label", __import__("pyarrow").array(y.astype(np.int32)))
            pq.write_table(t, "fm_%s_cos.parquet" % split)
        write_net("net_cos.prototxt", cos_layer("TRAIN", "fm_train_cos.parquet", 64),
                  cos_layer("TEST", "fm_test_cos.parquet", 100))
        train_and_check("cos", "net_cos.prototxt", args.short, 0.65)

    if "recovery" in only:
        marker = os.path.join(w, "recovery_failed_once")
        if os.path.exists(marker):
            os.remove(marker)
        write_net("net_df.prototxt", memory_layer("TRAIN", "com.yahoo.ml.caffe.ImageDataFrame", "fm_train.parquet", 64),
                  memory_layer("TEST", "com.yahoo.ml.caffe.ImageDataFrame", "fm_test.parquet", 100))
        # rank 1's task dies at iteration 130; the snapshot of iteration 100 is the resume point
        import io
        import contextlib
        buf = io.StringIO()
        with contextlib.redirect_stderr(buf):
            stats = train_and_check("recovery", "net_df.prototxt", args.short, 0.65, snapshot=50,
                                    fail_at="1:130:" + marker)
        sys.stderr.write(buf.getvalue())
        ok(os.path.exists(marker), "recovery: rank 1's task was killed at iteration 130")
        ok(stats.get("start") == 100 and stats.get("iter") == args.short,
           "recovery: the retried stage resumed from the iteration-100 snapshot and finished",
           "resumed at %s, ended at %s" % (stats.get("start"), stats.get("iter")))
        ok("resumed from" in buf.getvalue() and "at iteration 100" in buf.getvalue(),
           "recovery: the log shows the resume iteration",
           (re.findall(r"rank \d resumed from .*", buf.getvalue()) or ["no resume line"])[0])

    spark.stop()
    print("%d failed" % ok.fails)
    return 1 if ok.fails else 0


if __name__ == "__main__":
    sys.exit(main())
