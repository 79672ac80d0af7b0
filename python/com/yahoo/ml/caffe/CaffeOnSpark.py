"""com.yahoo.ml.caffe.CaffeOnSpark: CaffeOnSpark(sc) with train, test,
features and trainWithValidation, over crema.spark.CaffeOnSpark."""
from crema.spark.cos import CremaOnSpark

from .RegisterContext import registerContext


class CaffeOnSpark:
    """CaffeOnSpark(sc) (early releases: CaffeOnSpark(sc, sqlContext)):
    distributed training, test and feature extraction, one crema rank per
    Spark task. Results are what CaffeOnSpark returned: test() a dict of
    lists, features() and trainWithValidation() DataFrames."""

    def __init__(self, sc, sqlContext=None):
        registerContext(sc)
        self.__dict__["cos"] = CremaOnSpark(sc, sqlContext)

    def train(self, train_source):
        """Trains with the source's data; the model goes to -model."""
        self.cos.train(train_source)

    def test(self, test_source):
        """{output blob: [mean over the source's samples]}."""
        return self.cos.test(test_source)

    def features(self, source):
        """A DataFrame: SampleID and one array<float> column per -features
        blob (the -label blob among them)."""
        return self.cos.features(source)

    def trainWithValidation(self, train_source, validation_source):
        """Trains, validating every test_interval iterations; a DataFrame
        with one array<float> column per test-net output, one row per
        validation."""
        return self.cos.trainWithValidation(train_source, validation_source)
