"""CaffeOnSpark's conversion tools on PySpark:

    python -m crema.spark.tools lmdb2dataframe  -lmdb DIR -output URI [-outputFormat parquet|json] [--master URL]
    python -m crema.spark.tools binary2sequence -imageRoot DIR -labelFile FILE -output URI [--master URL]
    python -m crema.spark.tools binary2dataframe -imageRoot DIR -labelFile FILE -output URI [--master URL]

(LMDB2DataFrame, Binary2Sequence and Binary2DataFrame.) The label file has
one "relative/path label" per line. DataFrames follow the ImageDataFrame
contract (id, label, channels, height, width, encoded, data); sequence files
hold Text keys "id<TAB>label" and BytesWritable image files, as
SeqImageDataSource reads them."""
import os
import sys

import numpy as np

IMAGE_SCHEMA = ("id string, label string, channels int, height int, width int, encoded boolean, data binary")


def binary_array(rows):
    """An N x k uint8 array as an Arrow binary array, without a Python loop."""
    import pyarrow as pa
    rows = np.ascontiguousarray(rows, np.uint8).reshape(len(rows), -1)
    offsets = np.arange(0, rows.size + 1, rows.shape[1], dtype=np.int32)
    return pa.Array.from_buffers(pa.binary(), len(rows), [None, pa.py_buffer(offsets), pa.py_buffer(rows)])


def images_table(ids, labels, images):
    """An ImageDataFrame Arrow table of raw N x C x H x W uint8 images."""
    import pyarrow as pa
    n, c, h, w = images.shape
    return pa.table({"id": pa.array([str(i) for i in ids], pa.string()),
                     "label": pa.array(np.asarray(labels).astype(str), pa.string()),
                     "channels": pa.array(np.full(n, c, np.int32)), "height": pa.array(np.full(n, h, np.int32)),
                     "width": pa.array(np.full(n, w, np.int32)), "encoded": pa.array(np.zeros(n, bool)),
                     "data": binary_array(images.reshape(n, -1))})


def lmdb_to_dataframe(spark, lmdb_path, partitions=None, batch=256):
    """LMDB2DataFrame: the Datum records of an LMDB as an ImageDataFrame
    DataFrame (raw pixels; encoded Datums are decoded by crema's reader).
    Each partition reads its own shard with crema."""
    import crema
    total = crema.db_count(lmdb_path, "lmdb")
    parts = partitions or max(1, spark.sparkContext.defaultParallelism)
    path = os.path.abspath(lmdb_path)

    def task(batches):
        import tempfile

        from pyspark import TaskContext
        for _ in batches:
            pass
        r = TaskContext.get().partitionId()
        n = len(range(r, total, parts))
        if n == 0:
            return
        work = tempfile.mkdtemp(prefix="crema-lmdb2df-")
        net_path = os.path.join(work, "reader.prototxt")
        reader = crema.Message("NetParameter", 'layer { name: "data" type: "Data" top: "data" top: "label" '
                               'data_param { backend: LMDB } }')
        reader.set("layer[0].data_param.source", path)
        reader.set("layer[0].data_param.batch_size", batch)
        with open(net_path, "w") as f:
            f.write(reader.text())
        net = crema.Net(net_path, phase="TEST")
        net.set_data_shard("data", r, parts)
        # the records' keys are their ids, as in CaffeOnSpark's LMDB2DataFrame
        keys = [k.decode("utf-8", "replace") for k in crema.db_keys(path, "lmdb", r, parts)]
        for start in range(0, n, batch):
            out = net.forward()
            real = min(batch, n - start)
            img = np.rint(out["data"][:real]).clip(0, 255).astype(np.uint8)
            ids = keys[start:start + real]
            labels = out["label"].reshape(-1)[:real].astype(np.int64)
            for b in images_table(ids, labels, img).to_batches():
                yield b
        net.close()

    return spark.range(0, parts, 1, parts).mapInArrow(task, IMAGE_SCHEMA)


def _read_label_file(image_root, label_file):
    # the executors open the files: a relative root is the driver's
    image_root = os.path.abspath(image_root[len("file:"):] if image_root.startswith("file:") else image_root)
    with open(label_file) as f:
        for ln, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(None, 1)
            if len(parts) != 2:
                raise ValueError("%s:%d: expected \"path label\"" % (label_file, ln))
            yield parts[0], parts[1], os.path.join(image_root, parts[0])


def images_to_dataframe(spark, image_root, label_file, partitions=None):
    """Binary2DataFrame: the image files of a label file as an ImageDataFrame
    DataFrame of encoded images (files read by the executors)."""
    entries = list(_read_label_file(image_root, label_file))
    rdd = spark.sparkContext.parallelize(entries, partitions or spark.sparkContext.defaultParallelism)

    def row(e):
        name, label, path = e
        with open(path, "rb") as f:
            return (name, label, 0, 0, 0, True, f.read())

    return spark.createDataFrame(rdd.map(row), IMAGE_SCHEMA)


def images_to_sequence(spark, image_root, label_file, output, partitions=None):
    """Binary2Sequence: the image files of a label file written as a Hadoop
    SequenceFile of Text "id<TAB>label" keys and BytesWritable files."""
    entries = list(_read_label_file(image_root, label_file))
    rdd = spark.sparkContext.parallelize(entries, partitions or spark.sparkContext.defaultParallelism)

    def kv(e):
        name, label, path = e
        with open(path, "rb") as f:
            return ("%s\t%s" % (name, label), bytearray(f.read()))

    rdd.map(kv).saveAsSequenceFile(output)


def dataframe_to_sequence(df, output):
    """An ImageDataFrame DataFrame written as a SequenceFile with the
    six-field keys (id, label, channels, height, width, encoded)."""
    def kv(r):
        return ("%s\t%s\t%d\t%d\t%d\t%s" % (r.id, r.label, r.channels, r.height, r.width,
                                            "true" if r.encoded else "false"), bytearray(r.data))
    df.rdd.map(kv).saveAsSequenceFile(output)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    opts, master = {}, None
    i = 0
    while i < len(rest):
        if rest[i] == "--master" and i + 1 < len(rest):
            master = rest[i + 1]
        elif rest[i].startswith("-") and i + 1 < len(rest):
            opts[rest[i].lstrip("-")] = rest[i + 1]
        else:
            print("crema.spark.tools: unexpected %r" % rest[i], file=sys.stderr)
            return 2
        i += 2
    from pyspark.sql import SparkSession
    b = SparkSession.builder.appName("crema.spark.tools")
    if master:
        b = b.master(master)
    spark = b.getOrCreate()
    try:
        out = opts.get("output")
        if not out:
            raise ValueError("give -output")
        fmt = opts.get("outputFormat", "parquet")
        if cmd == "lmdb2dataframe":
            lmdb_to_dataframe(spark, opts["lmdb"]).write.mode("overwrite").format(fmt).save(out)
        elif cmd == "binary2dataframe":
            images_to_dataframe(spark, opts["imageRoot"], opts["labelFile"]).write.mode("overwrite") \
                .format(fmt).save(out)
        elif cmd == "binary2sequence":
            images_to_sequence(spark, opts["imageRoot"], opts["labelFile"], out)
        else:
            raise ValueError("unknown tool %r (lmdb2dataframe, binary2dataframe, binary2sequence)" % cmd)
        return 0
    except (KeyError, ValueError) as e:
        print("crema.spark.tools: %s" % (e if isinstance(e, ValueError) else "missing option -%s" % e.args[0]),
              file=sys.stderr)
        return 1
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
