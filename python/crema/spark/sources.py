"""crema.spark's data sources, chosen by a data layer's source_class as in
CaffeOnSpark: LMDB, SeqImageDataSource, ImageDataFrame, and the CoSData
layer's DataFrame source. A source describes, on the driver, what every
rank must feed (a picklable FeedSpec) and gives the Spark DataFrame that is
partitioned over the ranks (none for LMDB: each rank reads its shard)."""
import os

from ..proto import Message
from .config import local_path

LMDB = "com.yahoo.ml.caffe.LMDB"
SEQ = "com.yahoo.ml.caffe.SeqImageDataSource"
IMAGE_DF = "com.yahoo.ml.caffe.ImageDataFrame"
DF = "com.yahoo.ml.caffe.DataFrameSource"

COS_TYPES = ["STRING", "INT", "FLOAT", "INT_ARRAY", "FLOAT_ARRAY", "RAW_IMAGE", "ENCODED_IMAGE",
             "ENCODED_IMAGE_WITH_DIM"]


def layer_message(layer):
    """A LayerParameter crema.Message from a Message or its text."""
    return layer if isinstance(layer, Message) or layer is None else Message("LayerParameter", layer)


class FeedSpec:
    """What a rank feeds into its net's data layer (picklable)."""

    def __init__(self, kind, layer, batch, **kw):
        self.kind = kind  # "image", "cos" or "lmdb"
        self.layer = layer
        self.batch = batch
        self.__dict__.update(kw)


class DataSource:
    """A source for one data layer. CaffeOnSpark's way to get one:
    DataSource(spark).getSource(conf, isTraining). A DataFrame can be handed
    in directly (ImageDataFrame and CoSData sources): source.dataframe = df."""

    def __init__(self, spark=None, conf=None, layer=None, is_train=True):
        self.spark = spark
        self.conf = conf
        self.layer = layer_message(layer)
        self.isTrain = is_train
        self.dataframe = None

    def getSource(self, conf, isTraining):
        return get_source(self.spark, conf, isTraining)

    @property
    def layer_name(self):
        return self.layer.get("name")

    @property
    def source_class(self):
        return self.layer.get("source_class")

    PARAM = "memory_data_param"

    def p(self, field, kind=str):
        """A field of the layer's data parameter (its declared default when
        unset; None when the layer has no such parameter)."""
        v = self.layer.get("%s.%s" % (self.PARAM, field))
        if v is None:
            return None
        return v == "true" if kind is bool else kind(v)

    def batch_size(self):
        return self.p("batch_size", int) or 0

    def source_path(self):
        src = self.p("source") or ""
        if not src and self.dataframe is None:
            raise ValueError("layer %s: no source" % self.layer_name)
        return src

    def transform_text(self):
        """The layer's transform_param (a TransformationParameter's text; ""
        when it has none)."""
        return self.layer.get("transform_param") or ""

    def spec(self):
        raise NotImplementedError

    def rank_dataframe(self, spark, n):
        """The DataFrame whose n partitions the n ranks feed."""
        raise NotImplementedError


class ImageDataFrame(DataSource):
    """CaffeOnSpark's ImageDataFrame: a DataFrame with data (binary) and
    label, and optionally id, channels, height, width, encoded; read from the
    MemoryData layer's source in dataframe_format (parquet by default), after
    dataframe_column_select expressions."""

    def spec(self):
        return FeedSpec("image", self.layer_name, self.batch_size(), channels=self.p("channels", int) or 0,
                        height=self.p("height", int) or 0, width=self.p("width", int) or 0,
                        encoded=bool(self.p("image_encoded", bool)),
                        resize=bool(self.conf.resize) if self.conf is not None else False)

    def raw_dataframe(self, spark):
        if self.dataframe is not None:
            return self.dataframe
        fmt = self.p("dataframe_format") or "parquet"
        return spark.read.format(fmt).load(self.source_path())

    def image_dataframe(self, spark):
        """The contract's columns, defaults filled in: id, label (float),
        channels, height, width (int), encoded (bool), data (binary)."""
        from pyspark.sql import functions as F
        df = self.raw_dataframe(spark)
        select = self.layer.getlist("%s.dataframe_column_select" % self.PARAM)
        if select:
            df = df.selectExpr(*select)
        cols = set(df.columns)
        for need in ("data", "label"):
            if need not in cols:
                raise ValueError("layer %s (%s): the DataFrame has no %r column (columns: %s)"
                                 % (self.layer_name, self.source_class, need, ", ".join(df.columns)))
        s = self.spec()
        return df.select(
            (F.col("id").cast("string") if "id" in cols else F.lit(None).cast("string")).alias("id"),
            F.col("label").cast("float").alias("label"),
            (F.col("channels") if "channels" in cols else F.lit(s.channels)).cast("int").alias("channels"),
            (F.col("height") if "height" in cols else F.lit(s.height)).cast("int").alias("height"),
            (F.col("width") if "width" in cols else F.lit(s.width)).cast("int").alias("width"),
            (F.col("encoded") if "encoded" in cols else F.lit(s.encoded)).cast("boolean").alias("encoded"),
            F.col("data").cast("binary").alias("data"))

    def rank_dataframe(self, spark, n):
        return self.image_dataframe(spark).repartition(n)


class SeqImageDataSource(ImageDataFrame):
    """Hadoop SequenceFiles read by Spark's sc.sequenceFile: keys are Text
    "id<TAB>label" or "id<TAB>label<TAB>channels<TAB>height<TAB>width<TAB>
    encoded" (CaffeOnSpark's Java-serialized pairs and tuples cannot be read
    outside the JVM; crema.spark.tools writes these Text keys), values
    BytesWritable image bytes. Two-field keys mean encoded images, as in
    CaffeOnSpark."""

    def raw_dataframe(self, spark):
        from pyspark.sql.types import (BinaryType, BooleanType, IntegerType, StringType, StructField,
                                       StructType)
        path = self.source_path()
        rdd = spark.sparkContext.sequenceFile(path, "org.apache.hadoop.io.Text", "org.apache.hadoop.io.BytesWritable")

        def row(kv):
            key, value = kv
            f = key.split("\t")
            if len(f) >= 6:
                return (f[0], f[1], int(f[2]), int(f[3]), int(f[4]), f[5].lower() == "true", bytes(value))
            return (f[0], f[1] if len(f) > 1 else "0", 1, 0, 0, True, bytes(value))

        schema = StructType([StructField("id", StringType()), StructField("label", StringType()),
                             StructField("channels", IntegerType()), StructField("height", IntegerType()),
                             StructField("width", IntegerType()), StructField("encoded", BooleanType()),
                             StructField("data", BinaryType())])
        return spark.createDataFrame(rdd.map(row), schema)


class LMDBSource(DataSource):
    """com.yahoo.ml.caffe.LMDB: each rank reads its own shard of the LMDB
    (records rank, rank + n, ...) with crema's reader, transformed by the
    layer's transform_param; Spark only places the ranks. The path must be
    reachable from every executor (a local or shared file system)."""

    def lmdb_path(self):
        src = self.source_path()
        p = local_path(src)
        if p is None:
            raise ValueError("layer %s: LMDB source %s must be a file: path every executor can read"
                             % (self.layer_name, src))
        if not os.path.exists(p):
            raise ValueError("layer %s: LMDB %s does not exist" % (self.layer_name, p))
        return p

    def spec(self):
        return FeedSpec("lmdb", self.layer_name, self.batch_size(), path=self.lmdb_path(),
                        transform=self.transform_text(), channels=self.p("channels", int) or 0,
                        height=self.p("height", int) or 0, width=self.p("width", int) or 0)

    def rank_dataframe(self, spark, n):
        return spark.range(0, n, 1, n)


class CoSDataSource(DataSource):
    """The CoSData layer's DataFrame source (CaffeOnSpark's DataFrameSource):
    cos_data_param.source read as parquet, one
    column per top, named as the top; an optional id column."""

    PARAM = "cos_data_param"

    def tops(self):
        return [(self.layer.get("cos_data_param.top[%d].name" % i), self.layer.get("cos_data_param.top[%d].type" % i))
                for i in range(self.layer.count("cos_data_param.top"))]

    def spec(self):
        for name, t in self.tops():
            if t not in COS_TYPES:
                raise ValueError("layer %s: top %s has type %s, not one of %s" % (self.layer_name, name, t,
                                                                                 ", ".join(COS_TYPES)))
        return FeedSpec("cos", self.layer_name, self.batch_size(), tops=self.tops())

    def rank_dataframe(self, spark, n):
        df = self.dataframe
        if df is None:
            df = spark.read.format("parquet").load(self.source_path())
        missing = [name for name, _ in self.tops() if name not in df.columns]
        if missing:
            raise ValueError("layer %s: the DataFrame has no column for top(s) %s (columns: %s)"
                             % (self.layer_name, ", ".join(missing), ", ".join(df.columns)))
        cols = [name for name, _ in self.tops()]
        if "id" in df.columns:
            cols = ["id"] + [c for c in cols if c != "id"]
        return df.select(*cols).repartition(n)


_CLASSES = {LMDB: LMDBSource, SEQ: SeqImageDataSource, IMAGE_DF: ImageDataFrame, DF: CoSDataSource}


def get_source(spark, conf, is_train, dataframe=None):
    """The source of the net's TRAIN (is_train) or TEST data layer, by its
    source_class (a CoSData layer's is its DataFrame source)."""
    _, layer = conf.data_layer(is_train)
    t = layer.get("type")
    cls = layer.get("source_class")
    if t == "CoSData":
        klass = CoSDataSource
    elif t == "MemoryData":
        if cls not in _CLASSES or _CLASSES[cls] is CoSDataSource:
            raise ValueError("layer %s: source_class %r is not one crema.spark reads (%s)"
                             % (layer.get("name"), cls, ", ".join(k for k in _CLASSES if k != DF)))
        klass = _CLASSES[cls]
    else:
        raise ValueError("layer %s is a %s layer: crema.spark feeds MemoryData (with a source_class) and CoSData"
                         % (layer.get("name"), t))
    src = klass(spark, conf, layer, is_train)
    src.dataframe = dataframe
    return src
