"""crema.spark: CaffeOnSpark's Python API on PySpark, over crema.

    from crema.spark import CaffeOnSpark, Config, DataSource
    conf = Config(spark, ["-conf", "solver.prototxt", "-model", "file:/tmp/m.caffemodel",
                          "-train", "-clusterSize", "2"])
    cos = CaffeOnSpark(spark)
    cos.train(DataSource(spark).getSource(conf, True))

One crema rank per Spark task in barrier mode; see README "Spark"."""
from .config import Config
from .cos import CaffeOnSpark, CremaOnSpark, available_slots, check_slots
from .sources import (CoSDataSource, DataSource, ImageDataFrame, LMDBSource, SeqImageDataSource,
                      get_source)

__all__ = ["CremaOnSpark", "CaffeOnSpark", "Config", "DataSource", "ImageDataFrame", "SeqImageDataSource",
           "LMDBSource", "CoSDataSource", "get_source", "available_slots", "check_slots"]
