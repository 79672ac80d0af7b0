"""What runs inside a Spark task: one crema rank. Feeders turn a partition
(an Arrow table, or a shard of an LMDB read by crema) into batches fed to a
net's data layer with whole-array numpy work, never a Python loop per row;
train_rank drives the solver as rank r of n; score_partition runs a TEST
net for test() and features()."""
import glob
import json
import os
import re
import sys
import tempfile
import time

import numpy as np

from ..proto import Message


def log(msg):
    sys.stderr.write("crema.spark: %s\n" % msg)
    sys.stderr.flush()


# ---- feeders ----


def _binary_column(col):
    """A pyarrow binary column as (uint8 buffer, int64 offsets), zero-copy
    where Arrow allows."""
    import pyarrow as pa
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.null_count:
        raise ValueError("a binary column holds %d nulls" % arr.null_count)
    if pa.types.is_binary(arr.type) or pa.types.is_string(arr.type):
        arr = arr.cast(pa.large_binary())
    bufs = arr.buffers()
    offs = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset:arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    return data, offs


def _take_binary(data, offs, idx):
    """Rows idx (a contiguous or wrapped range) of a binary column: the bytes
    back to back and their lengths."""
    lens = (offs[1:] - offs[:-1])[idx]
    # idx is one or two contiguous runs: slice each
    runs = np.split(idx, np.where(np.diff(idx) != 1)[0] + 1)
    buf = np.concatenate([data[offs[r[0]]:offs[r[-1] + 1]] for r in runs if r.size])
    return buf, lens.astype(np.uintp)


class _Feeder:
    n = 0
    batch = 1

    def __init__(self):
        self.pos = 0

    def indices(self, count):
        idx = (self.pos + np.arange(count)) % self.n
        self.pos = (self.pos + count) % self.n
        return idx

    def seek(self, pos):
        self.pos = pos % self.n if self.n else 0


class ImageFeeder(_Feeder):
    """ImageDataFrame / SeqImageDataSource rows (id, label, channels, height,
    width, encoded, data) for a MemoryData layer."""

    def __init__(self, spec, table):
        super().__init__()
        self.spec = spec
        self.batch = spec.batch
        self.n = table.num_rows
        if self.n == 0:
            raise ValueError("layer %s: this rank's partition is empty" % spec.layer)
        self.labels = np.asarray(table.column("label").to_numpy(zero_copy_only=False), np.float32)
        self.ids = table.column("id").to_numpy(zero_copy_only=False)
        enc = np.asarray(table.column("encoded").to_numpy(zero_copy_only=False), bool)
        if enc.any() and not enc.all():
            raise ValueError("layer %s: the DataFrame mixes encoded and raw images" % spec.layer)
        self.encoded = bool(enc[0])
        self.data, self.offs = _binary_column(table.column("data"))
        c = np.asarray(table.column("channels").to_numpy(zero_copy_only=False), np.int64)
        h = np.asarray(table.column("height").to_numpy(zero_copy_only=False), np.int64)
        w = np.asarray(table.column("width").to_numpy(zero_copy_only=False), np.int64)
        self.c, self.h, self.w = int(c[0]), int(h[0]), int(w[0])
        if not self.encoded:
            lens = self.offs[1:] - self.offs[:-1]
            if (c != self.c).any() or (h != self.h).any() or (w != self.w).any():
                raise ValueError("layer %s: raw images of different sizes (crema.spark needs one size)"
                                 % spec.layer)
            bad = np.nonzero(lens != self.c * self.h * self.w)[0]
            if bad.size:
                raise ValueError("layer %s: row %s: raw image has %d bytes, channels x height x width is %d"
                                 % (spec.layer, self.ids[bad[0]], lens[bad[0]], self.c * self.h * self.w))
            base = self.data[self.offs[0]:self.offs[-1]]
            self.raw = base.reshape(self.n, self.c, self.h, self.w)

    def feed(self, net, batches=1, layer=None, count=None):
        idx = self.indices(count or batches * self.batch)
        layer = layer or self.spec.layer
        if self.encoded:
            buf, lens = _take_binary(self.data, self.offs, idx)
            hw = (self.spec.height, self.spec.width) if self.spec.resize else (0, 0)
            net.set_input_images(layer, (buf, lens), self.labels[idx], channels=self.spec.channels,
                                 height=hw[0], width=hw[1])
        else:
            net.set_input_images(layer, self.raw[idx], self.labels[idx])
        return idx

    def sample_ids(self, idx):
        ids = self.ids[idx]
        return np.array([str(i) if i is not None else "" for i in ids], dtype=object) \
            if ids.dtype == object else ids.astype(str)


class CoSFeeder(_Feeder):
    """A CoSData layer's columns, one per top."""

    _NUMERIC = ("STRING", "INT", "FLOAT")

    def __init__(self, spec, table):
        import pyarrow as pa
        import pyarrow.compute as pc
        super().__init__()
        self.spec = spec
        self.batch = spec.batch
        self.n = table.num_rows
        if self.n == 0:
            raise ValueError("layer %s: this rank's partition is empty" % spec.layer)
        self.ids = (table.column("id").to_numpy(zero_copy_only=False) if "id" in table.column_names
                    else None)
        self.cols = []
        for name, t in spec.tops:
            col = table.column(name)
            if t in ("ENCODED_IMAGE", "ENCODED_IMAGE_WITH_DIM"):
                self.cols.append(("enc",) + _binary_column(col))
            elif t == "RAW_IMAGE":
                data, offs = _binary_column(col)
                lens = offs[1:] - offs[:-1]
                if (lens != lens[0]).any():
                    raise ValueError("layer %s: top %s: raw images of different sizes" % (spec.layer, name))
                self.cols.append(("raw", data[offs[0]:offs[-1]].reshape(self.n, -1)))
            elif t in ("INT_ARRAY", "FLOAT_ARRAY"):
                arr = col.combine_chunks()
                lens = np.asarray(pc.list_value_length(arr).to_numpy(zero_copy_only=False))
                if self.n and (lens != lens[0]).any():
                    raise ValueError("layer %s: top %s: arrays of different lengths" % (spec.layer, name))
                vals = np.asarray(arr.flatten().to_numpy(zero_copy_only=False), np.float32)
                self.cols.append(("num", vals.reshape(self.n, -1)))
            else:
                if t == "STRING":
                    col = pc.cast(col, pa.float32())
                self.cols.append(("num", np.asarray(col.to_numpy(zero_copy_only=False), np.float32)))

    def feed(self, net, batches=1, layer=None, count=None):
        idx = self.indices(count or batches * self.batch)
        cols = []
        for c in self.cols:
            if c[0] == "enc":
                cols.append(_take_binary(c[1], c[2], idx))
            else:
                cols.append(c[1][idx])
        net.set_cos_data(layer or self.spec.layer, *cols)
        return idx

    def sample_ids(self, idx):
        if self.ids is None:
            return np.array(["" for _ in range(len(idx))], dtype=object)
        return self.ids[idx].astype(str)


class LmdbFeeder(_Feeder):
    """A shard of an LMDB read by crema's Data layer in a small reader net,
    fed as floats to the MemoryData layer."""

    def __init__(self, spec, rank, size, phase, work):
        import crema
        super().__init__()
        self.spec = spec
        self.batch = spec.batch
        total = crema.db_count(spec.path, "lmdb")
        self.rank, self.size = rank, size
        self.n = len(range(rank, total, size))
        if self.n == 0:
            raise ValueError("LMDB %s: rank %d of %d has no records (%d in all)" % (spec.path, rank, size, total))
        reader = Message("NetParameter", 'name: "reader" layer { name: "data" type: "Data" top: "data" '
                         'top: "label" data_param { backend: LMDB } }')
        reader.set("layer[0].data_param.source", spec.path)
        reader.set("layer[0].data_param.batch_size", spec.batch)
        if spec.transform:
            reader.set("layer[0].transform_param", Message("TransformationParameter", spec.transform))
        path = os.path.join(work, "reader_%s.prototxt" % phase.lower())
        with open(path, "w") as f:
            f.write(reader.text())
        self.reader = crema.Net(path, phase=phase)
        self.reader.set_data_shard("data", rank, size)
        self.keys = None

    def seek(self, pos):
        # the reader only goes forward: skip whole batches
        for _ in range((pos % self.n) // self.batch):
            self.reader.forward()
        self.pos = pos % self.n

    def feed(self, net, batches=1, layer=None, count=None):
        data, labels = [], []
        for _ in range(batches):
            out = self.reader.forward()
            data.append(out["data"])
            labels.append(out["label"].reshape(-1))
        count = count or batches * self.batch
        idx = self.indices(count)
        net.set_input_arrays(np.concatenate(data)[:count], np.concatenate(labels)[:count],
                             layer=layer or self.spec.layer)
        return idx

    def sample_ids(self, idx):
        # the records' keys, as CaffeOnSpark's LMDB source named its samples
        if self.keys is None:
            import crema
            self.keys = [k.decode("utf-8", "replace") for k in
                         crema.db_keys(self.spec.path, "lmdb", self.rank, self.size)]
        return np.array([self.keys[int(i)] for i in idx], dtype=object)


def make_feeder(spec, table, rank, size, phase, work):
    if spec.kind == "lmdb":
        return LmdbFeeder(spec, rank, size, phase, work)
    if spec.kind == "cos":
        return CoSFeeder(spec, table)
    return ImageFeeder(spec, table)


# ---- the job's files ----


def fed_net(job):
    """The job's net as the ranks build it (a crema.Message): its MemoryData
    layers lose their source_class, since crema.spark feeds them (libcrema
    alone would read an LMDB source itself, relative to the executor's
    directory)."""
    net = Message("NetParameter", job.net_text, filename="net")
    net.upgrade()
    for i in range(net.count("layer")):
        if net.get("layer[%d].type" % i) == "MemoryData":
            net.clear("layer[%d].source_class" % i)
    return net


def write_net_file(job, work, net=None, name="net.prototxt"):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write((net or fed_net(job)).text())
    return path


def write_solver_file(job, work):
    """The solver every rank trains with: the net inline (so every rank's
    solver is byte for byte the same, as crema's ranks check), snapshots
    under the model's directory, and no test nets: validation runs from
    Python on fed data."""
    sp = Message("SolverParameter", job.solver_text, filename="solver")
    sp.upgrade()
    for k in ("net", "train_net", "test_net", "net_param", "train_net_param", "test_net_param", "snapshot_prefix",
              "weights", "test_iter", "test_interval", "test_initialization", "test_state"):
        sp.clear(k)
    sp.set("net_param", fed_net(job))
    sp.set("snapshot_prefix", job.snapshot_prefix)
    sp.set("snapshot_after_train", False)
    path = os.path.join(work, "solver.prototxt")
    with open(path, "w") as f:
        f.write(sp.text())
    return path


def newest_snapshot(prefix):
    """The solver state with the highest iteration written under prefix."""
    best, best_iter = None, -1
    for p in glob.glob(glob.escape(prefix) + "_iter_*.solverstate*"):
        m = re.search(r"_iter_(\d+)\.solverstate(\.h5)?$", p)
        if m and int(m.group(1)) > best_iter:
            best, best_iter = p, int(m.group(1))
    return best, best_iter


# ---- training ----


def _share_weights(train, test):
    """The test net gets the train net's current weights, by layer name (as
    Caffe's ShareTrainedLayersWith before each test)."""
    for name, blobs in test.params.items():
        if name in train.params:
            for dst, src in zip(blobs, train.params[name]):
                dst.data[...] = src.data


def per_sample(blob, batch, real):
    """One output blob as CaffeOnSpark's rows for the first `real` samples of
    a batch of `batch`: count/batch values per sample, or, when the blob has
    fewer values than the batch (an aggregate such as accuracy or loss), the
    whole blob for every sample. A (real, k) float32 array."""
    a = np.asarray(blob, np.float32).reshape(-1)
    dim = a.size // batch
    if dim > 0:
        return a[:dim * batch].reshape(batch, dim)[:real]
    return np.broadcast_to(a, (real, a.size))


def _validate(job, solver, net, feeder, dist, size):
    """Every output of the TEST net as CaffeOnSpark's validation rows: the
    mean of its per-sample values over test_iter batches of each rank's
    validation data, averaged over the ranks; {name: [values]}."""
    _share_weights(solver.net, net)
    sums = None
    names = net.outputs
    sizes = []
    for _ in range(job.test_iter):
        feeder.feed(net, 1, layer=job.test_layer)
        net.forward()
        rows = [per_sample(net.blobs[k].data, feeder.batch, feeder.batch).mean(axis=0) for k in names]
        sizes = [r.size for r in rows]
        vec = np.concatenate(rows).astype(np.float32)
        sums = vec if sums is None else sums + vec
    total = dist.allreduce(sums) / float(job.test_iter * size)
    row, off = {}, 0
    for k, n in zip(names, sizes):
        row[k] = [float(x) for x in total[off:off + n]]
        off += n
    return row


def task_gpus():
    """The GPU addresses Spark gave this task (spark.task.resource.gpu.amount
    with the executors' GPU discovery), or [] outside Spark or without."""
    try:
        from pyspark import TaskContext
        ctx = TaskContext.get()
        res = ctx.resources() if ctx is not None else {}
        gpu = res.get("gpu") if res else None
        return list(gpu.addresses) if gpu is not None else []
    except Exception:
        return []


def choose_device(job, rank):
    """Where a rank computes, one rank per GPU as CaffeOnSpark ran one solver
    per GPU: the GPU Spark assigned the task; else, when the solver says
    solver_mode: GPU and GPUs are present, GPU rank % count (with
    spark.executor.resource.gpu unset, every task of a host sees every GPU);
    else the CPU, with one line saying so where the solver asked for a GPU.
    Returns a description for the log."""
    import crema
    sp = Message("SolverParameter", job.solver_text, filename="solver")
    wants = sp.has("solver_mode") and str(sp.get("solver_mode")) == "GPU"
    gpus = task_gpus()
    if gpus:
        gpu = int(gpus[0])
    elif wants and crema.gpu_count() > 0:
        gpu = rank % crema.gpu_count()
    else:
        crema.set_mode_cpu()
        if wants:
            log("rank %d: solver_mode is GPU, but this executor has no GPU; computing on the CPU" % rank)
        return "CPU"
    crema.set_device(gpu)
    crema.set_mode_gpu()  # raises, naming why, if the GPU cannot be had
    return "GPU %d" % gpu


def train_rank(job, rank, size, address, secret, table, val_table):
    """Trains as rank of size: feeds each iteration's batch into the train
    net's data layer and steps the solver, which averages the gradients over
    the ranks. Returns the records the driver gets back (validation rows,
    the resume point, timings) as JSON strings."""
    import crema
    work = tempfile.mkdtemp(prefix="crema-spark-%d-" % rank)
    records = []
    dist = crema.Dist(rank, size, address, secret, job.timeout_ms)
    solver = vnet = None
    try:
        where = choose_device(job, rank)
        if rank == 0:
            log("rank %d of %d computes on the %s" % (rank, size, where))
        solver = crema.Solver(write_solver_file(job, work), log=(rank == 0))
        if job.weights:
            solver.net.load_weights(job.weights)
        state, _ = newest_snapshot(job.snapshot_prefix)
        if job.snapshot_state and state is None:
            state = job.snapshot_state
        if state:
            # a state names its .caffemodel as its writer gave it: resolve a
            # relative name next to the state, not in the executor's directory
            here = os.getcwd()
            os.chdir(os.path.dirname(os.path.abspath(state)))
            try:
                solver.restore(os.path.abspath(state))
            finally:
                os.chdir(here)
            log("rank %d: resuming from %s at iteration %d" % (rank, state, solver.iter))
            records.append(json.dumps({"kind": "resume", "rank": rank, "iter": solver.iter, "file": state}))
        solver.set_dist(dist)
        feeder = make_feeder(job.train_spec, table, rank, size, "TRAIN", work)
        feeder.seek(solver.iter * job.train_spec.batch * job.iter_size)
        val = None
        if job.val_spec is not None:
            val = make_feeder(job.val_spec, val_table, rank, size, "TEST", work)
            vnet = crema.Net(write_net_file(job, work), phase="TEST")
            if rank == 0:
                records.append(json.dumps({"kind": "outputs", "names": vnet.outputs}))

        def validate(it):
            row = _validate(job, solver, vnet, val, dist, size)
            if rank == 0:
                records.append(json.dumps({"kind": "validation", "iter": it, "outputs": row}))
                log("iteration %d: validation %s" % (it, row))

        t0 = time.time()
        start_iter = solver.iter
        while solver.iter < job.max_iter:
            it = solver.iter
            # CaffeOnSpark validates at every test_interval-th iteration after
            # the first, before that iteration's step, and not after the last
            if val is not None and job.test_interval > 0 and it % job.test_interval == 0 and it > 0:
                validate(it)
            feeder.feed(solver.net, job.iter_size)
            if job.fail_at and rank == job.fail_at[0] and it == job.fail_at[1] and \
                    not os.path.exists(job.fail_at[2]):
                open(job.fail_at[2], "w").close()
                log("rank %d: failing on purpose at iteration %d (test hook)" % (rank, it))
                os._exit(3)
            solver.step(1)
        seconds = time.time() - t0
        if rank == 0:
            solver.net.save(job.model_local)
            records.append(json.dumps({"kind": "done", "iter": solver.iter, "start": start_iter,
                                       "seconds": seconds,
                                       "images": (solver.iter - start_iter) * job.train_spec.batch *
                                       job.iter_size * size}))
        dist.barrier()
    finally:
        if vnet is not None:
            vnet.close()
        if solver is not None:
            solver.close()
        dist.close()
    return records


# ---- test and features ----


def score_partition(job, spec, table, rank, size, mode):
    """Runs the TEST net with the model over every sample of this partition
    once. mode "test": yields one JSON record of the per-sample output sums
    (CaffeOnSpark's test() is the mean of the per-sample rows); "features":
    yields (ids, {blob: N x k float32}) per batch, rows as per_sample."""
    import crema
    work = tempfile.mkdtemp(prefix="crema-spark-score-")
    choose_device(job, rank)
    net = crema.Net(write_net_file(job, work), job.model_local, phase="TEST")
    feeder = make_feeder(spec, table, rank, size, "TEST", work)
    n, b = feeder.n, spec.batch
    sums, count, sizes = None, 0, []
    names = net.outputs
    missing = [k for k in (job.features if mode == "features" else []) if k not in net.blobs]
    if missing:
        net.close()
        raise ValueError("features: the test net has no blob %s (its blobs: %s)"
                         % (", ".join(missing), ", ".join(net.blob_names)))
    tail = None
    try:
        for start in range(0, n, b):
            real = min(b, n - start)
            use, batch = net, b
            if mode == "test" and real < b:
                # a net whose batch is the remainder, so that every sample
                # counts once and the means are exact
                tail = crema.Net(_tail_net(job, real, work), job.model_local, phase="TEST")
                use, batch = tail, real
            idx = feeder.feed(use, 1, count=batch if batch < b else None)
            use.forward()
            if mode == "test":
                rows = [per_sample(use.blobs[k].data, batch, real).sum(axis=0, dtype=np.float64) for k in names]
                sizes = [r.size for r in rows]
                vec = np.concatenate(rows)
                sums = vec if sums is None else sums + vec
                count += real
            else:
                feats = {k: np.ascontiguousarray(per_sample(use.blobs[k].data, batch, real)) for k in job.features}
                yield feeder.sample_ids(idx[:real]), feats
        if mode == "test":
            yield json.dumps({"names": names, "sizes": sizes,
                              "sums": [] if sums is None else [float(x) for x in sums], "count": count})
    finally:
        net.close()
        if tail is not None:
            tail.close()


def _tail_net(job, batch, work):
    """The net with its TEST data layer taking batch samples."""
    net = fed_net(job)
    i = job.test_layer_index
    for key in ("memory_data_param", "cos_data_param"):
        if net.has("layer[%d].%s" % (i, key)):
            net.set("layer[%d].%s.batch_size" % (i, key), batch)
    return write_net_file(job, work, net, "net_tail.prototxt")
