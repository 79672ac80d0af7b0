"""crema.spark.CremaOnSpark: CaffeOnSpark's API (train, trainWithValidation,
test, features) on PySpark. Training runs one crema rank per Spark task in
barrier mode; the ranks meet at rank 0's rendezvous, whose address travels
by BarrierTaskContext.allGather with a secret the driver draws."""
import atexit
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time

from ..proto import Message
from . import rank as rank_mod
from .config import local_path


class _Job:
    """Everything a task needs, pickled into its closure."""


def _spark_session(sc_or_spark):
    from pyspark.sql import SparkSession
    if isinstance(sc_or_spark, SparkSession):
        return sc_or_spark
    return SparkSession.builder.config(conf=sc_or_spark.getConf()).getOrCreate()


def is_local_master(master):
    master = master or ""
    return master == "local" or master.startswith("local[") or master.startswith("local-cluster[")


_barrier_timer_hook = []


def release_barrier_timer_at_exit(sc):
    """Spark 3.5 starts a non-daemon java.util.Timer (BarrierTaskContext's)
    in the JVM of a barrier task. With local[N] that JVM is the driver's, and
    a spark-submit application that ends without sc.stop() would then never
    exit: at the Python driver's exit the timer is cancelled."""
    master = sc.master or ""
    if _barrier_timer_hook or not (master == "local" or master.startswith("local[")):
        return
    _barrier_timer_hook.append(sc)

    def cancel():
        try:
            cls = sc._jvm.java.lang.Class.forName("org.apache.spark.BarrierTaskContext$")
            field = cls.getDeclaredField("org$apache$spark$BarrierTaskContext$$timer")
            field.setAccessible(True)
            field.get(cls.getField("MODULE$").get(None)).cancel()
        except Exception as e:  # another Spark, or the JVM already gone
            sys.stderr.write("crema.spark: could not release Spark's barrier timer at exit: %s\n" % e)

    atexit.register(cancel)


def use_driver_python(sc):
    """On a local master with no Python named for the workers (neither
    PYSPARK_PYTHON nor spark.pyspark.python), the workers run the driver's
    own interpreter, which has crema, instead of `python3` from the PATH."""
    if is_local_master(sc.master) and not os.environ.get("PYSPARK_PYTHON") and not sc.getConf().get("spark.pyspark.python", None):
        sc.pythonExec = sys.executable


def available_slots(sc):
    """How many tasks Spark can run at once now (what a barrier stage needs)."""
    try:
        jsc = sc._jsc.sc()
        rp = jsc.resourceProfileManager().defaultResourceProfile()
        return int(jsc.maxNumConcurrentTasks(rp))
    except Exception:  # other Spark versions: the scheduler's default parallelism
        return int(sc.defaultParallelism)


def planned_slots(sc):
    """The task slots the application will have once its executors are up,
    when the master or the configuration says (None when it does not)."""
    import re
    master = sc.master or ""
    m = re.match(r"local\[(\d+|\*)(,\d+)?\]$", master)
    if m:
        return os.cpu_count() if m.group(1) == "*" else int(m.group(1))
    if master == "local":
        return 1
    m = re.match(r"local-cluster\[\s*(\d+)\s*,\s*(\d+)\s*,\s*\d+\s*\]$", master)
    cpus = int(sc.getConf().get("spark.task.cpus", "1"))
    if m:
        return int(m.group(1)) * int(m.group(2)) // cpus
    inst, cores = sc.getConf().get("spark.executor.instances"), sc.getConf().get("spark.executor.cores")
    dyn = sc.getConf().get("spark.dynamicAllocation.enabled", "false") == "true"
    if inst and cores and not dyn:
        return int(inst) * int(cores) // cpus
    return None


def check_slots(sc, cluster_size, wait_s=None):
    """Fails at once, with the reason, when the application cannot have
    clusterSize task slots (a barrier stage would wait for them forever);
    otherwise waits for the executors to register (spark.crema.slotWait
    seconds, 120 by default)."""
    planned = planned_slots(sc)
    if planned is not None and planned < cluster_size:
        raise ValueError("clusterSize %d is larger than the %d task slots of this Spark application (master %s): "
                         "every rank needs a slot at the same time; start more executors or cores, or lower "
                         "-clusterSize" % (cluster_size, planned, sc.master))
    if wait_s is None:
        wait_s = float(sc.getConf().get("spark.crema.slotWait", "120"))
    deadline = time.time() + wait_s
    slots = available_slots(sc)
    while slots < cluster_size and time.time() < deadline:
        time.sleep(0.5)
        slots = available_slots(sc)
    if slots < cluster_size:
        raise ValueError("clusterSize %d is larger than the %d task slots this Spark application has after %g s "
                         "(master %s): every rank needs a slot at the same time; start more executors or cores, "
                         "or lower -clusterSize" % (cluster_size, slots, wait_s, sc.master))
    return slots


class _Uri:
    """-model and -output: file: paths are written in place; any other Hadoop
    URI gets the file written locally and copied by the JVM's FileSystem."""

    def __init__(self, sc, uri):
        self.sc, self.uri = sc, uri
        self.local = local_path(uri)
        self.staging = None
        if self.local is None:
            self.staging = tempfile.mkdtemp(prefix="crema-spark-model-")
            self.local = os.path.join(self.staging, os.path.basename(uri.rstrip("/")) or "model")

    def publish(self, extra_files=()):
        if self.staging is None:
            return
        jvm = self.sc._jvm
        hconf = self.sc._jsc.hadoopConfiguration()
        for f in [self.local] + list(extra_files):
            dst = self.uri if f == self.local else os.path.join(os.path.dirname(self.uri), os.path.basename(f))
            path = jvm.org.apache.hadoop.fs.Path(dst)
            fs = path.getFileSystem(hconf)
            fs.copyFromLocalFile(False, True, jvm.org.apache.hadoop.fs.Path("file://" + f), path)


class CremaOnSpark:
    """CaffeOnSpark(spark): train(source), trainWithValidation(train, val),
    test(source), features(source), with sources from
    DataSource(spark).getSource(conf, isTraining)."""

    def __init__(self, sc_or_spark, sqlContext=None):
        # sqlContext: CaffeOnSpark's early CaffeOnSpark(sc, sqlContext); the
        # session comes from the context either way
        self.spark = _spark_session(sc_or_spark)
        self.sc = self.spark.sparkContext
        use_driver_python(self.sc)

    # ---- the job ----

    def _job(self, conf, train_source=None):
        job = _Job()
        job.solver_text = conf.solver_text()
        job.net_text = conf.net_text()
        sp = Message("SolverParameter", job.solver_text, filename=conf.solver_path())
        sp.upgrade()
        job.max_iter = sp.getint("max_iter")
        job.test_interval = sp.getint("test_interval")
        job.test_iter = sp.getint("test_iter[0]", 0)
        job.display = sp.getint("display")
        job.snapshot = sp.getint("snapshot")
        job.iter_size = max(1, sp.getint("iter_size", 1))
        job.timeout_ms = int(os.environ.get("CREMA_SPARK_TIMEOUT_MS", "60000"))
        job.features = list(conf.features or [])
        job.weights = None
        job.snapshot_state = None
        job.fail_at = None
        fail = os.environ.get("CREMA_SPARK_FAIL_AT")  # "rank:iter:marker", for the recovery test
        if fail:
            r, i, marker = fail.split(":", 2)
            job.fail_at = (int(r), int(i), marker)
        if conf.modelPath:
            self._model = _Uri(self.sc, conf.modelPath)
            job.model_local = self._model.local
            prefix = sp.get("snapshot_prefix") or "snapshot"
            job.snapshot_prefix = os.path.join(os.path.dirname(job.model_local), os.path.basename(prefix))
        else:
            self._model = None
            job.model_local = None
            job.snapshot_prefix = None
        if conf.snapshotModelFile:
            job.weights = local_path(conf.snapshotModelFile)
        if conf.snapshotStateFile:
            job.snapshot_state = local_path(conf.snapshotStateFile)
        job.test_layer = None
        job.test_layer_index = None
        try:
            job.test_layer_index, tl = conf.data_layer(False)
            job.test_layer = tl.get("name")
        except ValueError:
            pass
        return job

    # ---- training ----

    def train(self, train_source):
        """Trains with the source's data on clusterSize ranks; the model goes
        to -model (snapshots beside it)."""
        self._train(train_source, None)

    def trainWithValidation(self, train_source, validation_source):
        """Trains and, at every test_interval-th iteration after the first
        and before the last (as CaffeOnSpark), runs the test net over
        test_iter batches of the validation source on every rank. Returns a
        DataFrame with one row per validation and one array<float> column
        per test-net output, in the net's output order (each the mean over
        the batches' samples, averaged over the ranks), as CaffeOnSpark's."""
        rows = self._train(train_source, validation_source)
        vals = sorted((r for r in rows if r["kind"] == "validation"), key=lambda r: r["iter"])
        from pyspark.sql.types import ArrayType, FloatType, StructField, StructType
        names = self._validation_names if vals == [] else list(vals[0]["outputs"].keys())
        schema = StructType([StructField(k, ArrayType(FloatType(), False), False) for k in names])
        self.validation_iterations = [v["iter"] for v in vals]
        return self.spark.createDataFrame([tuple(v["outputs"][k] for k in names) for v in vals], schema)

    def _train(self, train_source, validation_source):
        conf = train_source.conf
        size = int(conf.clusterSize)
        if size < 1:
            raise ValueError("clusterSize must be at least 1 (got %d)" % size)
        if not conf.modelPath:
            raise ValueError("train: give -model (where the trained model goes)")
        check_slots(self.sc, size)
        job = self._job(conf, train_source)
        job.train_spec = train_source.spec()
        job.val_spec = validation_source.spec() if validation_source is not None else None
        if job.val_spec is not None:
            job.test_layer = validation_source.layer_name
        os.makedirs(os.path.dirname(job.model_local), exist_ok=True)
        val_bytes = None
        if validation_source is not None and job.val_spec.kind != "lmdb":
            val_bytes = self._collect_arrow(self._val_dataframe(validation_source))
        val_bc = self.sc.broadcast(val_bytes) if val_bytes is not None else None
        df = train_source.rank_dataframe(self.spark, size)
        secret = secrets.token_hex(16)
        is_lmdb = job.train_spec.kind == "lmdb"

        def task(batches):
            import pyarrow as pa
            from pyspark import BarrierTaskContext
            ctx = BarrierTaskContext.get()
            r = ctx.partitionId()
            infos = ctx.getTaskInfos()
            port = ""
            if r == 0:
                s = socket.socket()
                s.bind(("", 0))
                port = str(s.getsockname()[1])
                s.close()
            gathered = ctx.allGather(port)
            host = infos[0].address.rsplit(":", 1)[0]
            address = "%s:%s" % (host, gathered[0])
            tables = list(batches)
            table = None if is_lmdb else (pa.Table.from_batches(tables) if tables else None)
            if table is not None and table.num_rows == 0:
                raise ValueError("rank %d: its partition of the training data is empty" % r)
            val_table = None
            if val_bc is not None:
                vt = pa.ipc.open_stream(val_bc.value).read_all()
                lo, hi = vt.num_rows * r // len(infos), vt.num_rows * (r + 1) // len(infos)
                val_table = vt.slice(lo, hi - lo)
            recs = rank_mod.train_rank(job, r, len(infos), address, secret, table, val_table)
            yield pa.RecordBatch.from_arrays([pa.array(recs, pa.string())], names=["record"])

        # a shuffle after the barrier stage makes it a ShuffleMapStage: Spark
        # retries those (all tasks together) when a task fails, never a
        # barrier ResultStage
        release_barrier_timer_at_exit(self.sc)
        out = df.mapInArrow(task, "record string", barrier=True).repartition(1).collect()
        rows = [json.loads(r.record) for r in out]
        self._validation_names = []
        for r in rows:
            if r["kind"] == "outputs":
                self._validation_names = r["names"]
            if r["kind"] == "resume":
                rank_mod.log("rank %d resumed from %s at iteration %d" % (r["rank"], r["file"], r["iter"]))
            if r["kind"] == "done":
                self.last_train_stats = r
        snaps = []
        if job.snapshot_prefix:
            import glob
            snaps = glob.glob(glob.escape(job.snapshot_prefix) + "_iter_*")
        self._model.publish(snaps)
        return rows

    def _val_dataframe(self, source):
        if source.spec().kind == "image":
            return source.image_dataframe(self.spark)
        return source.rank_dataframe(self.spark, 1)

    @staticmethod
    def _collect_arrow(df):
        import pyarrow as pa
        batches = df._collect_as_arrow()
        table = pa.Table.from_batches(batches) if batches else None
        if table is None or table.num_rows == 0:
            raise ValueError("the validation source is empty")
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
        return sink.getvalue().to_pybytes()

    # ---- test and features ----

    def _score_df(self, source, mode, schema, conf):
        job = self._job(conf)
        if not job.model_local or not os.path.exists(job.model_local):
            raise ValueError("%s: -model %s: no such model" % (mode, conf.modelPath))
        spec = source.spec()
        parts = max(1, int(conf.clusterSize))
        df = source.rank_dataframe(self.spark, parts)
        is_lmdb = spec.kind == "lmdb"

        def task(batches):
            import numpy as np
            import pyarrow as pa
            from pyspark import TaskContext
            ctx = TaskContext.get()
            tables = list(batches)
            if is_lmdb:
                table = None
                if not tables or sum(b.num_rows for b in tables) == 0:
                    return
            else:
                table = pa.Table.from_batches(tables) if tables else None
                if table is None or table.num_rows == 0:
                    return
            for item in rank_mod.score_partition(job, spec, table, ctx.partitionId(), parts, mode):
                if mode == "test":
                    yield pa.RecordBatch.from_arrays([pa.array([item], pa.string())], names=["record"])
                    continue
                ids, feats = item
                cols, names = [pa.array(list(ids), pa.string())], ["SampleID"]
                for k in job.features:
                    f = feats[k]
                    offsets = np.arange(f.shape[0] + 1, dtype=np.int32) * f.shape[1]
                    cols.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(f.reshape(-1), pa.float32())))
                    names.append(k)
                yield pa.RecordBatch.from_arrays(cols, names=names)

        return df.mapInArrow(task, schema)

    def test(self, source):
        """The mean of every test-net output over every sample of the source:
        {output name: [values]} (a list, as CaffeOnSpark's; one value for a
        scalar output such as accuracy or loss)."""
        conf = source.conf
        recs = [json.loads(r.record) for r in self._score_df(source, "test", "record string", conf).collect()]
        recs = [r for r in recs if r["count"]]
        if not recs:
            raise ValueError("test: the source has no samples")
        names, sizes = recs[0]["names"], recs[0]["sizes"]
        total = [sum(r["sums"][i] for r in recs) for i in range(len(recs[0]["sums"]))]
        count = sum(r["count"] for r in recs)
        result, off = {}, 0
        for k, n in zip(names, sizes):
            result[k] = [v / count for v in total[off:off + n]]
            off += n
        return result

    def features(self, source):
        """A DataFrame with SampleID and one array<float> column per blob of
        -features (the -label blob among them, as CaffeOnSpark's Config adds
        it): per sample, count/batch values of the blob, or the whole blob
        when it has fewer values than the batch (an aggregate such as
        accuracy, then the same for every sample of the batch)."""
        conf = source.conf
        if not conf.features:
            raise ValueError("features: give -features blob1,blob2")
        cols = ["SampleID string"] + ["`%s` array<float>" % k for k in conf.features]
        return self._score_df(source, "features", ", ".join(cols), conf)


CaffeOnSpark = CremaOnSpark
