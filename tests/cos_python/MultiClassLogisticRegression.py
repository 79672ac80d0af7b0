"""CaffeOnSpark's example caffe-grid/src/main/python/examples/
MultiClassLogisticRegression.py on crema, its calls in the same order:
train LeNet, extract ip1 features, fit Spark MLlib's multiclass logistic
regression on them. Python 3 and Spark 3 changes only (see
tests/test_cos_python.sh); the checks at the end are this test's own (the
example printed nothing)."""
from com.yahoo.ml.caffe.CaffeOnSpark import CaffeOnSpark
from com.yahoo.ml.caffe.Config import Config
from com.yahoo.ml.caffe.DataSource import DataSource
from pyspark.sql import DataFrame
from pyspark.mllib.linalg import Vectors
from pyspark.sql import Row
from pyspark import SparkConf, SparkContext
from itertools import zip_longest
from pyspark.mllib.regression import LabeledPoint
from pyspark.mllib.classification import LogisticRegressionWithLBFGS
from pyspark.sql import SQLContext
import sys


def grouper(iterable, n, fillvalue=None):
    args = [iter(iterable)] * n
    return zip_longest(*args, fillvalue=fillvalue)


conf = SparkConf()
sc = SparkContext(conf=conf)
sqlContext = SQLContext(sc)
# Initialize all objects
cos = CaffeOnSpark(sc, sqlContext)
cmdargs = sc.getConf().get("spark.pythonargs")
args = dict(grouper(cmdargs.split(), 2))
cfg = Config(sc, args)
dl_train_source = DataSource(sc).getSource(cfg, True)
# Train
cos.train(dl_train_source)
lr_raw_source = DataSource(sc).getSource(cfg, False)
# Extract features
extracted_df = cos.features(lr_raw_source)
# Do multiclass LogisticRegression (Spark 2 took DataFrame.map away: .rdd.map)
data = extracted_df.rdd.map(lambda row: LabeledPoint(row.label[0], Vectors.dense(row.ip1)))
lr = LogisticRegressionWithLBFGS.train(data, numClasses=10, iterations=10)
predictions = lr.predict(data.map(lambda pt: pt.features))

# this test's checks: one prediction per feature row, and the regression
# on LeNet's ip1 features classifies far better than chance (0.1)
n = extracted_df.count()
pairs = data.map(lambda pt: pt.label).zip(predictions)
right = pairs.filter(lambda lp: lp[0] == lp[1]).count()
print("MultiClassLogisticRegression: %d rows, %d predictions, accuracy %.4f" % (n, predictions.count(), right / n),
      file=sys.stderr)
ok = n == 10000 and predictions.count() == n and right / n > 0.6
print("ok   MultiClassLogisticRegression example" if ok else "FAIL MultiClassLogisticRegression example")
sc.stop()
sys.exit(0 if ok else 1)
