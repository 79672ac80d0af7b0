"""com.yahoo.ml.caffe.DataSource: DataSource(sc).getSource(conf, isTraining),
the source of the net's TRAIN or TEST data layer by its source_class, over
crema.spark's sources."""
from crema.spark.sources import get_source

from .RegisterContext import registerContext


class DataSource:
    """DataSource(sc).getSource(conf, isTraining): a source to train, test
    or extract features from (isTraining False: the TEST data layer's)."""

    def __init__(self, sc):
        registerContext(sc)
        self.sc = sc

    def getSource(self, conf, isTraining):
        from pyspark.sql import SparkSession
        spark = SparkSession.builder.config(conf=self.sc.getConf()).getOrCreate() \
            if not isinstance(self.sc, SparkSession) else self.sc
        return get_source(spark, conf, isTraining)
