"""crema's JVM front end end to end (run by tests/test_spark_jvm.sh).

    test_jvm.py WORKDIR --bin CREMA --jar crema.jar --cache DIR [--iters N] [--only a,b]

Real Spark (spark-submit, local-cluster[2,1,1024]), real JVMs, Hadoop's own
WebHdfsFileSystem client: hdfs://127.0.0.1:PORT URIs reach the WebHDFS
server of tests/webhdfs_server.py (spark.hadoop.fs.hdfs.impl), which logs
which process wrote or read each file.

  mlp       the README's Scala program (MyMLPipeline's shape), clusterSize 2,
            the train LMDB on HDFS: model, snapshots and the logistic
            regression on HDFS, written by an executor
  cli       spark-submit --class com.yahoo.ml.caffe.CaffeOnSpark -train
            -features ip1 -label label, model and features on HDFS; rank 0's
            executor killed halfway through a snapshot: resumed from the last
            whole snapshot
  pyspark   the same job through crema.spark (python -m crema.spark), model
            and snapshots on HDFS written by a Python task: same accuracy
  java      the README's Java program (ImageDataFrame source)
  checks    tests/jvm/Checks.scala: bad input, the tools, DataFrameSource
  cliargs   the command line's message for -clusterSize 3 on 2 slots
"""
import argparse
import glob
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "python", "tests"))
from fm_lenet import FM, LAYERS, Tally, cos_layer, idx, memory_layer  # noqa: E402

ok = Tally()
DF_SOURCE = "com.yahoo.ml.caffe.DataFrameSource"


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def write_net(path, train_layer, test_layer):
    write(path, 'name: "LeNet"\n' + train_layer + test_layer + LAYERS)


def write_solver(path, net, iters, snapshot=0, prefix="lenet"):
    write(path, 'net: "%s"\nbase_lr: 0.01\nmomentum: 0.9\nweight_decay: 0.0005\nlr_policy: "inv"\ngamma: 0.0001\n'
                'power: 0.75\ndisplay: 50\nmax_iter: %d\nsnapshot: %d\nsnapshot_prefix: "%s"\nrandom_seed: 1\n'
                'solver_mode: CPU\n' % (net, iters, snapshot, prefix))


def images_parquet(path, ids, labels, images, corrupt=None):
    """An ImageDataFrame parquet of raw 1 x 28 x 28 images (pyarrow, no Spark)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    n = len(labels)
    data = [images[i].tobytes() for i in range(n)]
    if corrupt is not None:
        data[corrupt] = data[corrupt][:100]
    pq.write_table(pa.table({"id": pa.array([str(i) for i in ids]), "label": pa.array([str(int(v)) for v in labels]),
                             "channels": pa.array(np.ones(n, np.int32)), "height": pa.array(np.full(n, 28, np.int32)),
                             "width": pa.array(np.full(n, 28, np.int32)), "encoded": pa.array(np.zeros(n, bool)),
                             "data": pa.array(data, pa.binary())}), path)


def png(a):
    raw = b"".join(b"\x00" + a[i].tobytes() for i in range(a.shape[0]))

    def chunk(tag, d):
        return struct.pack(">I", len(d)) + tag + d + struct.pack(">I", zlib.crc32(tag + d) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", a.shape[1], a.shape[0], 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


class Runner:
    """spark-submit and python -m crema.spark, with the common settings; keeps each run's output."""

    def __init__(self, work, jar, port):
        import pyspark
        self.spark_home = os.path.dirname(pyspark.__file__)
        self.submit = os.path.join(self.spark_home, "bin", "spark-submit")
        self.jars = os.path.join(self.spark_home, "jars")
        self.work, self.jar, self.port = work, jar, port
        self.conf = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
                     "spark.executorEnv.OPENBLAS_NUM_THREADS": "1", "spark.sql.shuffle.partitions": "2",
                     "spark.hadoop.fs.hdfs.impl": "org.apache.hadoop.hdfs.web.WebHdfsFileSystem"}

    def _env(self):
        env = dict(os.environ)
        env["SPARK_LOCAL_IP"] = "127.0.0.1"
        env.pop("PYSPARK_SUBMIT_ARGS", None)
        return env

    def _run(self, name, cmd, env, timeout):
        """Runs cmd with its output in NAME.out / NAME.err (kept whatever happens); a run past timeout
        is killed and reads as rc 124."""
        out_path, err_path = os.path.join(self.work, name + ".out"), os.path.join(self.work, name + ".err")
        t0 = time.time()
        with open(out_path, "w") as out, open(err_path, "w") as err:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, start_new_session=True)
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                # where it stood: every JVM of the run's session, for the log
                ps = subprocess.run(["ps", "-o", "pid=,comm=", "-s", str(proc.pid)], capture_output=True, text=True)
                for line in ps.stdout.splitlines():
                    pid, comm = line.split(None, 1)
                    if comm.strip() == "java":
                        subprocess.run(["jstack", pid], stdout=err, stderr=subprocess.DEVNULL, timeout=60)
                os.killpg(proc.pid, 9)
                proc.wait()
                rc = 124
        with open(out_path, errors="replace") as f:
            stdout = f.read()
        with open(err_path, errors="replace") as f:
            stderr = f.read()
        if rc == 124:
            stderr += "\n(killed after %d s)" % timeout
        return subprocess.CompletedProcess(cmd, rc, stdout, stderr), time.time() - t0

    def app_logs(self, stderr):
        """The executors' stderr of the application a driver log names."""
        m = re.search(r"app ID (app-[0-9-]+)", stderr)
        if not m:
            return ""
        out = []
        for f in sorted(glob.glob(os.path.join(self.spark_home, "work", m.group(1), "*", "stderr"))):
            with open(f, errors="replace") as fh:
                out.append("--- %s\n%s" % (f, "".join(fh.readlines()[-40:])))
        return "\n".join(out)

    def forget_app(self, stderr):
        m = re.search(r"app ID (app-[0-9-]+)", stderr)
        if m:
            shutil.rmtree(os.path.join(self.spark_home, "work", m.group(1)), ignore_errors=True)

    def spark_submit(self, name, master, main_class, app_jar, args, extra_conf=None, jars=None, timeout=900):
        conf = dict(self.conf)
        conf.update(extra_conf or {})
        cmd = [self.submit, "--master", master]
        for k, v in conf.items():
            cmd += ["--conf", "%s=%s" % (k, v)]
        if jars:
            cmd += ["--jars", ",".join(jars)]
        cmd += ["--class", main_class, app_jar] + args
        return self._run(name, cmd, self._env(), timeout)

    def crema_spark(self, name, master, args, timeout=900):
        env = self._env()
        env["PYSPARK_SUBMIT_ARGS"] = " ".join("--conf %s=%s" % kv for kv in self.conf.items()) + " pyspark-shell"
        env["PYSPARK_PYTHON"] = env["PYSPARK_DRIVER_PYTHON"] = sys.executable
        return self._run(name, [sys.executable, "-m", "crema.spark"] + args + ["--master", master], env, timeout)


def tail(p, runner, n=30):
    lines = [ln for ln in p.stderr.splitlines() if not ln.startswith("\tat ")]
    return "\n".join(lines[-n:]) + "\n" + runner.app_logs(p.stderr)


def writes(log, path):
    """The server's log records of path (and of its temporary names)."""
    base = os.path.basename(path)
    out = []
    if os.path.exists(log):
        with open(log) as f:
            for line in f:
                r = json.loads(line)
                if r["path"] == path or r.get("destination") == path or \
                        (os.path.dirname(r["path"]) == os.path.dirname(path) and
                         os.path.basename(r["path"]).startswith("." + base + ".crema-tmp-")):
                    out.append(r)
    return out


def feature_accuracy(rows_ip1, labels, model):
    """Accuracy of argmax(ip2) computed from the ip1 features and the model's ip2 weights."""
    import crema
    w = crema.read_caffemodel(model)
    W, b = w["ip2"][0].data, w["ip2"][1].data
    logits = rows_ip1 @ W.reshape(W.shape[0], -1).T + b.reshape(-1)
    return float(np.mean(np.argmax(logits, 1) == labels))


def read_json_parts(d):
    rows = []
    for f in sorted(glob.glob(os.path.join(d, "part-*"))):
        with open(f) as fh:
            rows += [json.loads(line) for line in fh if line.strip()]
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--jar", required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--only", default="mlp,cli,pyspark,java,checks,cliargs")
    args = ap.parse_args()
    only = set(args.only.split(","))
    t_start = time.time()
    os.makedirs(args.work, exist_ok=True)
    os.chdir(args.work)
    w = os.getcwd()
    iters = args.iters

    # ---- data ----
    os.makedirs(args.cache, exist_ok=True)
    for split, pre in (("train", "train"), ("test", "t10k")):
        d = os.path.join(args.cache, "fm_%s_lmdb" % split)
        if not os.path.exists(os.path.join(d, "data.mdb")):
            shutil.rmtree(d, ignore_errors=True)
            subprocess.run([args.bin, "convert-mnist", "%s/%s-images-idx3-ubyte.gz" % (FM, pre),
                            "%s/%s-labels-idx1-ubyte.gz" % (FM, pre), d], check=True, stdout=subprocess.DEVNULL)
    test_lmdb = os.path.join(args.cache, "fm_test_lmdb")
    xte, yte = idx(FM + "/t10k-images-idx3-ubyte.gz"), idx(FM + "/t10k-labels-idx1-ubyte.gz")

    # ---- the WebHDFS server ----
    hdfs_root = os.path.join(w, "hdfs")
    hdfs_log = os.path.join(w, "hdfs.log")
    os.makedirs(os.path.join(hdfs_root, "data"), exist_ok=True)
    shutil.copytree(os.path.join(args.cache, "fm_train_lmdb"), os.path.join(hdfs_root, "data", "fm_train_lmdb"),
                    dirs_exist_ok=True)
    port_file = os.path.join(w, "hdfs.port")
    server = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "webhdfs_server.py"), "--root", hdfs_root,
                               "--port-file", port_file, "--log", hdfs_log], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(port_file):
                break
            time.sleep(0.1)
        port = int(open(port_file).read())
        hdfs = "hdfs://127.0.0.1:%d" % port
        run_all(args, only, w, iters, hdfs, hdfs_root, hdfs_log, test_lmdb, xte, yte, port)
    finally:
        server.terminate()
        server.wait()
    print("jvm: %d passed, %d failed in %.0f s (local-cluster[2,1,1024], %d iterations)"
          % (ok.passes, ok.fails, time.time() - t_start, iters), flush=True)
    sys.exit(1 if ok.fails else 0)


def compile_programs(w, jar, runner):
    """The README's Scala and Java programs and tests/jvm/Checks.scala, compiled against crema.jar."""
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    sec = readme[readme.index("## JVM"):]
    scala_src = re.search(r"```scala\n(.*?)```", sec, re.S).group(1)
    java_src = re.search(r"```java\n(.*?)```", sec, re.S).group(1)
    src = os.path.join(w, "src")
    os.makedirs(src, exist_ok=True)
    write(os.path.join(src, "MyMLPipeline.scala"), scala_src)
    write(os.path.join(src, "TrainTestFeatures.java"), java_src)
    cls = os.path.join(w, "classes")
    shutil.rmtree(cls, ignore_errors=True)
    os.makedirs(cls)
    jars = sorted(glob.glob(os.path.join(runner.jars, "*.jar")))
    scalac_cp = ":".join(j for j in jars if re.search(r"scala-(compiler|library|reflect)-2\.12", j))
    cp = ":".join(jars + [jar])
    t0 = time.time()
    p = subprocess.run(["java", "-Xss8m", "-cp", scalac_cp, "scala.tools.nsc.Main", "-d", cls, "-cp", cp,
                        os.path.join(src, "MyMLPipeline.scala"), os.path.join(HERE, "Checks.scala")],
                       capture_output=True, text=True)
    ok(p.returncode == 0, "the README's Scala program and Checks.scala compile against crema.jar",
       "%.0f s%s" % (time.time() - t0, "" if p.returncode == 0 else ": " + p.stdout + p.stderr))
    p2 = subprocess.run(["javac", "-d", cls, "-cp", cp, os.path.join(src, "TrainTestFeatures.java")],
                        capture_output=True, text=True)
    ok(p2.returncode == 0, "the README's Java program compiles against crema.jar", p2.stdout + p2.stderr)
    app = os.path.join(w, "tests.jar")
    subprocess.run(["jar", "cf", app, "-C", cls, "."], check=True)
    return app if p.returncode == 0 and p2.returncode == 0 else None


def run_all(args, only, w, iters, hdfs, hdfs_root, hdfs_log, test_lmdb, xte, yte, port):
    runner = Runner(w, args.jar, port)
    app = compile_programs(w, args.jar, runner)
    local_cluster = "local-cluster[2,1,1024]"

    # one net for the JVM and the Python runs: the train LMDB on HDFS
    write_net("net_hdfs.prototxt", memory_layer("TRAIN", "com.yahoo.ml.caffe.LMDB", hdfs + "/data/fm_train_lmdb", 64),
              memory_layer("TEST", "com.yahoo.ml.caffe.LMDB", "file:" + test_lmdb, 100))
    executor = "org.apache.spark.executor.CoarseGrainedExecutorBackend"

    def executor_wrote(path, who=executor):
        recs = [r for r in writes(hdfs_log, path) if r["op"] == "RENAME" and r.get("destination") == path and r["ok"]]
        procs = sorted({r["process"] for r in recs})
        return bool(recs) and all(who in (p or "") for p in procs), procs

    if "mlp" in only and app:
        write_solver("solver_mlp.prototxt", "net_hdfs.prototxt", iters, snapshot=iters // 2)
        p, dt = runner.spark_submit("mlp", local_cluster, "MyMLPipeline", app,
                                    ["-conf", "solver_mlp.prototxt", "-train", "-features", "ip1", "-label", "label",
                                     "-clusterSize", "2", "-model", hdfs + "/jvm/mlp/lenet.caffemodel",
                                     "-output", hdfs + "/jvm/mlp/lr"], jars=[args.jar])
        m = re.search(r"MyMLPipeline: logistic regression on ip1, training accuracy ([0-9.]+)", p.stdout)
        ok(p.returncode == 0 and m and float(m.group(1)) > 0.6,
           "MyMLPipeline (the README's Scala program): train on an LMDB on HDFS, features, LogisticRegression",
           "%.0f s, %s" % (dt, m.group(0) if m else "rc %d:\n%s" % (p.returncode, tail(p, runner))))
        d = os.path.join(hdfs_root, "jvm", "mlp")
        names = sorted(os.listdir(d)) if os.path.isdir(d) else []
        want = ["lenet.caffemodel", "lenet_iter_%d.caffemodel" % (iters // 2), "lenet_iter_%d.solverstate" % (iters // 2),
                "lenet_iter_%d.caffemodel" % iters, "lenet_iter_%d.solverstate" % iters, "lr"]
        ok(all(n in names for n in want) and os.path.isdir(os.path.join(d, "lr", "metadata")),
           "MyMLPipeline: the model, both snapshots and the logistic regression are on HDFS", " ".join(names))
        good, procs = executor_wrote("/jvm/mlp/lenet.caffemodel")
        good2, procs2 = executor_wrote("/jvm/mlp/lenet_iter_%d.solverstate" % (iters // 2))
        ok(good and good2, "MyMLPipeline: the model and the snapshot were written by an executor, not the driver",
           "; ".join(procs + procs2))
        reads = [r for r in writes(hdfs_log, "/data/fm_train_lmdb/data.mdb") if r["op"] == "OPEN"]
        ok(reads and all(executor in (r["process"] or "") for r in reads),
           "MyMLPipeline: the train LMDB was copied from HDFS by the executors",
           "%d reads by %s" % (len(reads), sorted({r["process"] for r in reads})))
        if p.returncode == 0:
            runner.forget_app(p.stderr)

    acc, ids = {}, {}
    if "cli" in only:
        write_solver("solver_cli.prototxt", "net_hdfs.prototxt", iters, snapshot=iters // 5)
        kill_at = 2 * (iters // 5)
        marker = os.path.join(w, "cli_killed_once")
        if os.path.exists(marker):
            os.remove(marker)
        p, dt = runner.spark_submit("cli", local_cluster, "com.yahoo.ml.caffe.CaffeOnSpark", args.jar,
                                    ["-train", "-features", "ip1", "-label", "label", "-conf", "solver_cli.prototxt",
                                     "-clusterSize", "2", "-model", hdfs + "/jvm/cli/lenet.caffemodel",
                                     "-output", hdfs + "/jvm/cli/features"],
                                    extra_conf={"spark.crema.test.killInSnapshot": "%d:%s" % (kill_at, marker)})
        rows = read_json_parts(os.path.join(hdfs_root, "jvm", "cli", "features"))
        ok(p.returncode == 0 and len(rows) == 10000 and set(rows[0]) == {"SampleID", "ip1", "label"},
           "spark-submit --class com.yahoo.ml.caffe.CaffeOnSpark -train -features ip1 -label label: features on HDFS",
           "%.0f s, %d rows%s" % (dt, len(rows), "" if p.returncode == 0 else ":\n" + tail(p, runner)))
        model = os.path.join(hdfs_root, "jvm", "cli", "lenet.caffemodel")
        if rows and os.path.exists(model):
            rows.sort(key=lambda r: int(r["SampleID"]))
            ids["jvm"] = [r["SampleID"] for r in rows]
            acc["jvm"] = feature_accuracy(np.array([r["ip1"] for r in rows], np.float32),
                                          np.array([r["label"][0] for r in rows]), model)
        killed = [r for r in writes(hdfs_log, "/jvm/cli/lenet_iter_%d.solverstate" % kill_at)
                  if r["op"] == "CREATE" and not r["complete"]]
        ok(os.path.exists(marker) and killed,
           "cli: rank 0's executor died halfway through writing the iteration-%d snapshot" % kill_at,
           "%d partial write(s) of %s" % (len(killed), killed[0]["path"] if killed else "-"))
        resumed = re.findall(r"rank (\d) resumed from (\S+) at iteration (\d+)", p.stderr)
        want = hdfs + "/jvm/cli/lenet_iter_%d.solverstate" % (kill_at - iters // 5)
        ok(sorted(r[0] for r in resumed) == ["0", "1"] and all(r[1] == want for r in resumed),
           "cli: the retried stage resumed both ranks from the last whole snapshot on HDFS",
           "; ".join("rank %s from %s at %s" % r for r in resumed) or "no resume in the driver log")
        done = re.search(r"rank 0 \(([^)]*)\) wrote (\S+) at iteration (\d+)", p.stderr)
        good, procs = executor_wrote("/jvm/cli/lenet.caffemodel")
        ok(done and int(done.group(3)) == iters and good,
           "cli: finished all %d iterations; the model written by an executor" % iters,
           "%s; %s" % (done.group(0) if done else "no model line", "; ".join(procs)))
        if p.returncode == 0:
            runner.forget_app(p.stderr)

    if "pyspark" in only:
        if not os.path.exists("solver_cli.prototxt"):
            write_solver("solver_cli.prototxt", "net_hdfs.prototxt", iters, snapshot=iters // 5)
        p, dt = runner.crema_spark("pyspark", local_cluster,
                                   ["-train", "-features", "ip1", "-label", "label", "-conf", "solver_cli.prototxt",
                                    "-clusterSize", "2", "-model", hdfs + "/py/lenet.caffemodel",
                                    "-output", "file:" + os.path.join(w, "py_features")])
        rows = read_json_parts(os.path.join(w, "py_features"))
        ok(p.returncode == 0 and len(rows) == 10000,
           "python -m crema.spark -train -features ip1 -label label with -model on HDFS",
           "%.0f s, %d rows%s" % (dt, len(rows), "" if p.returncode == 0 else ":\n" + tail(p, runner)))
        d = os.path.join(hdfs_root, "py")
        names = sorted(os.listdir(d)) if os.path.isdir(d) else []
        want = ["lenet.caffemodel"] + ["lenet_iter_%d.%s" % (k * (iters // 5), e) for k in range(1, 6)
                                       for e in ("caffemodel", "solverstate")]
        ok(all(n in names for n in want), "crema.spark: the model and every snapshot are on HDFS", " ".join(names))
        good, procs = executor_wrote("/py/lenet.caffemodel", who="pyspark.daemon")
        good2, procs2 = executor_wrote("/py/lenet_iter_%d.solverstate" % iters, who="pyspark.daemon")
        ok(good and good2, "crema.spark: a Python task wrote the model and the snapshots, not the driver",
           "; ".join(procs + procs2))
        model = os.path.join(d, "lenet.caffemodel")
        if rows and os.path.exists(model):
            rows.sort(key=lambda r: int(r["SampleID"]))
            ids["python"] = [r["SampleID"] for r in rows]
            acc["python"] = feature_accuracy(np.array([r["ip1"] for r in rows], np.float32),
                                             np.array([r["label"][0] for r in rows]), model)
        if "jvm" in ids:
            ok(ids["jvm"] == ids.get("python"), "the JVM and crema.spark name the samples alike (the LMDB's keys)",
               "%s ... against %s ..." % (ids["jvm"][:2], ids.get("python", [])[:2]))
        if "jvm" in acc:
            import crema
            a = crema.read_caffemodel(os.path.join(hdfs_root, "jvm", "cli", "lenet.caffemodel"))
            b = crema.read_caffemodel(model)
            diff = max(float(np.max(np.abs(x.data - y.data))) for k in a for x, y in zip(a[k], b[k]))
            ok(abs(acc["jvm"] - acc["python"]) <= 0.005,
               "the JVM command line and crema.spark give the same accuracy (within 0.5%)",
               "JVM %.4f (killed and resumed), crema.spark %.4f; the models' weights differ by at most %g"
               % (acc["jvm"], acc["python"], diff))
        if p.returncode == 0:
            runner.forget_app(p.stderr)

    if "java" in only and app:
        xtr, ytr = idx(FM + "/train-images-idx3-ubyte.gz"), idx(FM + "/train-labels-idx1-ubyte.gz")
        if not os.path.exists("fm_train.parquet"):
            images_parquet("fm_train.parquet", np.arange(len(ytr)), ytr, xtr)
        if not os.path.exists("fm_test.parquet"):
            images_parquet("fm_test.parquet", np.arange(len(yte)), yte, xte)
        write_net("net_df.prototxt", memory_layer("TRAIN", "com.yahoo.ml.caffe.ImageDataFrame",
                                                  "file:" + os.path.join(w, "fm_train.parquet"), 64),
                  memory_layer("TEST", "com.yahoo.ml.caffe.ImageDataFrame", "file:" + os.path.join(w, "fm_test.parquet"),
                               100))
        write_solver("solver_df.prototxt", "net_df.prototxt", iters // 2)
        p, dt = runner.spark_submit("java", local_cluster, "TrainTestFeatures", app,
                                    ["-conf", "solver_df.prototxt", "-train", "-features", "ip2", "-label", "label",
                                     "-clusterSize", "2", "-model", "file:" + os.path.join(w, "java", "lenet.caffemodel"),
                                     "-output", "file:" + os.path.join(w, "java", "features")], jars=[args.jar])
        m = re.search(r"TrainTestFeatures: accuracy ([0-9.]+)", p.stdout)
        rows = read_json_parts(os.path.join(w, "java", "features"))
        argmax = np.mean([np.argmax(r["ip2"]) == r["label"][0] for r in rows]) if rows else -1
        ok(p.returncode == 0 and m and float(m.group(1)) > 0.5 and len(rows) == 10000 and
           abs(argmax - float(m.group(1))) < 1e-6,
           "TrainTestFeatures (the README's Java program): ImageDataFrame source, test() equals the features' accuracy",
           "%.0f s, test() %s, features %d rows, argmax accuracy %.4f%s" % (
               dt, m.group(1) if m else "-", len(rows), argmax, "" if p.returncode == 0 else ":\n" + tail(p, runner)))
        if p.returncode == 0:
            runner.forget_app(p.stderr)

    if "checks" in only and app:
        write_net("net_noclass.prototxt", memory_layer("TRAIN", "com.example.NoSuchSource", "file:" + test_lmdb, 64),
                  memory_layer("TEST", "com.yahoo.ml.caffe.LMDB", "file:" + test_lmdb, 100))
        write_solver("solver_noclass.prototxt", "net_noclass.prototxt", 10)
        write("net_bad.prototxt", 'name: "LeNet"\nlayer { name: "data" type: "MemoryData" top: "data"\n'
                                  '  memory_data_param { batch_size: sixty-four } }\n')
        write_solver("solver_badnet.prototxt", "net_bad.prototxt", 10)
        write_net("net_lmdb.prototxt", memory_layer("TRAIN", "com.yahoo.ml.caffe.LMDB", "file:" + test_lmdb, 64),
                  memory_layer("TEST", "com.yahoo.ml.caffe.LMDB", "file:" + test_lmdb, 100))
        write_solver("solver_lmdb.prototxt", "net_lmdb.prototxt", 10)
        images_parquet("corrupt.parquet", np.arange(200), yte[:200], xte[:200], corrupt=77)
        write_net("net_corrupt.prototxt", memory_layer("TRAIN", "com.yahoo.ml.caffe.ImageDataFrame",
                                                       "file:" + os.path.join(w, "corrupt.parquet"), 16),
                  memory_layer("TEST", "com.yahoo.ml.caffe.LMDB", "file:" + test_lmdb, 100))
        write_solver("solver_corrupt.prototxt", "net_corrupt.prototxt", 10)
        os.makedirs("imgs", exist_ok=True)
        for i in range(3):
            with open("imgs/%d.png" % i, "wb") as f:
                f.write(png(xte[i]))
        write("labels2.txt", "".join("%d.png %d\n" % (i, yte[i]) for i in range(3)))
        write("labels3.txt", "".join("%d.png %d %d.png\n" % (i, yte[i], i) for i in range(3)))
        shutil.rmtree("png_seq", ignore_errors=True)
        write_net("net_seq.prototxt", memory_layer("TRAIN", "com.yahoo.ml.caffe.SeqImageDataSource",
                                                   "file:" + os.path.join(w, "png_seq"), 1), "")
        write_solver("solver_seq.prototxt", "net_seq.prototxt", 10)
        import pyarrow as pa
        import pyarrow.parquet as pq
        for split, n in (("train", 20000), ("test", 10000)):
            x, y = (idx(FM + "/train-images-idx3-ubyte.gz")[:n], idx(FM + "/train-labels-idx1-ubyte.gz")[:n]) \
                if split == "train" else (xte, yte)
            pq.write_table(pa.table({"id": pa.array([str(i) for i in range(n)]),
                                     "data": pa.array([x[i].tobytes() for i in range(n)], pa.binary()),
                                     "label": pa.array(y.astype(np.int32))}), "fm_%s_cos.parquet" % split)
        write_net("net_cos.prototxt", cos_layer("TRAIN", "file:" + os.path.join(w, "fm_train_cos.parquet"), 64, DF_SOURCE),
                  cos_layer("TEST", "file:" + os.path.join(w, "fm_test_cos.parquet"), 100, DF_SOURCE))
        write_solver("solver_cos.prototxt", "net_cos.prototxt", iters // 2)
        closed = free_port()
        p, dt = runner.spark_submit("checks", "local[2]", "Checks", app,
                                    [w, str(closed), ",".join(str(int(v)) for v in yte[:3])], jars=[args.jar])
        print("\n".join("     " + ln for ln in p.stdout.splitlines() if ln.startswith(("ok", "FAIL", "LMDB"))))
        lm = re.search(r"LMDB.makeRDD: (\d+) rows; record 0 label (\d+) 1x28x28 pixel sum (\d+)", p.stdout)
        ok(lm and int(lm.group(1)) == 10000 and int(lm.group(2)) == int(yte[0]) and
           int(lm.group(3)) == int(xte[0].astype(np.int64).sum()),
           "LMDB.makeRDD (LMDB2DataFrame's rows): every record, labels and pixels as in the LMDB",
           lm.group(0) if lm else "no LMDB line")
        ok(p.returncode == 0 and "Checks: 0 failed" in p.stdout,
           "tests/jvm/Checks.scala: bad input, tools, DataFrameSource (local[2])",
           "%.0f s%s" % (dt, "" if p.returncode == 0 else ":\n" + tail(p, runner)))

    if "cliargs" in only:
        if not os.path.exists("solver_lmdb.prototxt"):
            write_net("net_lmdb.prototxt", memory_layer("TRAIN", "com.yahoo.ml.caffe.LMDB", "file:" + test_lmdb, 64),
                      memory_layer("TEST", "com.yahoo.ml.caffe.LMDB", "file:" + test_lmdb, 100))
            write_solver("solver_lmdb.prototxt", "net_lmdb.prototxt", 10)
        p, dt = runner.spark_submit("cliargs3", local_cluster, "com.yahoo.ml.caffe.CaffeOnSpark", args.jar,
                                    ["-train", "-conf", "solver_lmdb.prototxt", "-clusterSize", "3", "-model",
                                     "file:" + os.path.join(w, "three", "m.caffemodel")])
        line = [ln for ln in p.stderr.splitlines() if ln.startswith("CaffeOnSpark:")]
        ok(p.returncode == 1 and line and "clusterSize 3 is larger than the 2 task slots" in line[-1],
           "the command line with -clusterSize 3 on local-cluster[2,1,1024]: exit 1 with the reason",
           "%.0f s, rc %d: %s" % (dt, p.returncode, line[-1] if line else tail(p, runner)))


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


if __name__ == "__main__":
    main()
