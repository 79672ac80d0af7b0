"""com.yahoo.ml.caffe.Config: Config(sc, args) from a SparkContext and a
dict (or list) of CaffeOnSpark's flags, over crema.spark.Config. As
CaffeOnSpark's Python Config did, a name that is no option is reported on
stdout ("Attribute x not valid") and reads as None instead of raising."""
from crema.spark.config import Config as _Config

from .RegisterContext import registerContext


class Config(_Config):
    """CaffeOnSpark configuration: clusterSize, features, label, modelPath,
    protoFile, isTraining, isTest, isFeature, solverParameter, netParam,
    ... (CaffeOnSpark's names), readable and settable."""

    def __init__(self, sc, args=None):
        registerContext(sc)
        _Config.__init__(self, sc, args)

    def __getattr__(self, name):
        if name.startswith("__") or name.startswith("_"):
            raise AttributeError(name)
        try:
            return _Config.__getattr__(self, name)
        except AttributeError:
            print("Attribute " + name + " not valid")
            return None

    def __setattr__(self, name, value):
        try:
            _Config.__setattr__(self, name, value)
        except AttributeError:
            print("Attribute " + name + " not valid")
