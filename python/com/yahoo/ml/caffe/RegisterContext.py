"""com.yahoo.ml.caffe.RegisterContext: registerContext(sc) makes sc, jvm
and gateway builtins (as CaffeOnSpark's modules expected them);
registerSQLContext(sqlContext) makes sqlContext one."""
import builtins


def registerContext(sc):
    sc = getattr(sc, "sparkContext", sc)  # a SparkSession gives its context
    builtins.sc = sc
    builtins.jvm = sc._jvm
    builtins.gateway = sc._gateway


def registerSQLContext(sqlContext):
    builtins.sqlContext = sqlContext
