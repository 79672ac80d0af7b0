"""crema.spark.Config: CaffeOnSpark's Config, with its command-line flags
and property names (protoFile, modelPath, clusterSize, features, ...)."""
import os

from . import prototxt

# flag -> (property, kind, default); kinds: str, int, bool (a bare flag), list
_FLAGS = {
    "conf": ("protoFile", str, ""),
    "model": ("modelPath", str, ""),
    "train": ("isTraining", bool, False),
    "test": ("isTest", bool, False),
    "features": ("features", list, []),
    "label": ("label", str, ""),
    "outputFormat": ("outputFormat", str, "json"),
    "output": ("outputPath", str, ""),
    "devices": ("devices", int, 1),
    "persistent": ("isRddPersistent", bool, False),
    "snapshot": ("snapshotStateFile", str, ""),
    "weights": ("snapshotModelFile", str, ""),
    "connection": ("connection", str, "ethernet"),
    "resize": ("resize", bool, False),
    "clusterSize": ("clusterSize", int, 1),
    "lmdb_partitions": ("lmdb_partitions", int, 0),
    "imageRoot": ("imageRoot", str, ""),
    "labelFile": ("labelFile", str, ""),
    "captionFile": ("captionFile", str, ""),
    "captionLength": ("captionLength", int, 20),
    "vocabSize": ("vocabSize", int, -1),
    "imageCaptionDFDir": ("imageCaptionDFDir", str, ""),
    "vocabDir": ("vocabDir", str, ""),
    "embeddingDFDir": ("embeddingDFDir", str, ""),
    "transform_thread_per_device": ("transform_thread_per_device", int, 1),
}
_PROPS = {v[0] for v in _FLAGS.values()} | {"isFeature"}


def local_path(uri):
    """A file: URI (or plain path) as a local absolute path; None for other schemes."""
    if uri.startswith("file://"):
        return uri[len("file://"):] or "/"
    if uri.startswith("file:"):
        return os.path.abspath(uri[len("file:"):])
    if "://" in uri:
        return None
    return os.path.abspath(uri)


class Config:
    """Config(spark_or_sc, args): args is CaffeOnSpark's command line (a
    list like ["-conf", "solver.prototxt", "-train", "-clusterSize", "2"])
    or a dict {"conf": ..., "clusterSize": 2}. Properties keep CaffeOnSpark's
    names and can be set: conf.clusterSize = 2, conf.features = ["ip1"]."""

    def __init__(self, sc=None, args=None):
        object.__setattr__(self, "_v", {p: (list(d) if k is list else d) for p, k, d in _FLAGS.values()})
        object.__setattr__(self, "sc", sc)
        if isinstance(args, dict):
            flat = []
            for k, v in args.items():
                flat.append(k if k.startswith("-") else "-" + k)
                if v is not True:
                    flat.append(str(v) if not isinstance(v, (list, tuple)) else ",".join(v))
            args = flat
        if args:
            self._parse(list(args))

    def _parse(self, args):
        i = 0
        while i < len(args):
            a = args[i]
            if not a.startswith("-"):
                raise ValueError("Config: unexpected argument %r (flags start with -)" % a)
            name = a.lstrip("-")
            val = None
            if "=" in name:
                name, val = name.split("=", 1)
            if name not in _FLAGS:
                raise ValueError("Config: unknown option -%s (CaffeOnSpark's options: %s)"
                                 % (name, ", ".join("-" + k for k in sorted(_FLAGS))))
            prop, kind, _ = _FLAGS[name]
            if kind is bool:
                if val is None and i + 1 < len(args) and args[i + 1].lower() in ("true", "false"):
                    i += 1
                    val = args[i]
                self._v[prop] = val is None or val.lower() == "true"
            else:
                if val is None:
                    if i + 1 >= len(args):
                        raise ValueError("Config: -%s needs a value" % name)
                    i += 1
                    val = args[i]
                try:
                    self._v[prop] = ([s for s in val.split(",") if s] if kind is list else kind(val))
                except ValueError:
                    raise ValueError("Config: -%s %r is not a %s" % (name, val, kind.__name__)) from None
            i += 1

    def __getattr__(self, name):
        if name == "isFeature":
            return bool(self._v["features"])
        if name in self._v:
            return self._v[name]
        if name == "solverParameter":
            return self._solver()
        if name == "netParam":
            return self._net()
        raise AttributeError("Config has no attribute %r" % name)

    def __setattr__(self, name, value):
        if name == "features" and isinstance(value, str):
            value = [s for s in value.split(",") if s]
        if name not in _PROPS or name == "isFeature":
            raise AttributeError("Config: %r is not a CaffeOnSpark option" % name)
        self._v[name] = value

    # ---- the prototxts, read on the driver ----

    def solver_path(self):
        if not self.protoFile:
            raise ValueError("Config: no solver prototxt: give -conf")
        p = local_path(self.protoFile)
        if p is None or not os.path.exists(p):
            raise ValueError("Config: -conf %s: no such local file" % self.protoFile)
        return p

    def solver_text(self):
        with open(self.solver_path()) as f:
            return f.read()

    def _solver(self):
        return prototxt.parse(self.solver_text())

    def net_path(self):
        sp = self._solver()
        net = prototxt.get(sp, "net") or prototxt.get(sp, "train_net")
        if not net:
            raise ValueError("Config: solver %s names no net (crema.spark needs `net:`)" % self.protoFile)
        p = local_path(net)
        if not os.path.exists(p):
            # CaffeOnSpark resolved the net relative to the working directory;
            # also accept it relative to the solver's directory
            alt = os.path.join(os.path.dirname(self.solver_path()), net)
            if os.path.exists(alt):
                return os.path.abspath(alt)
            raise ValueError("Config: the solver's net %s does not exist" % net)
        return p

    def net_text(self):
        with open(self.net_path()) as f:
            return f.read()

    def _net(self):
        return prototxt.parse(self.net_text())

    def data_layer(self, is_train):
        """The net's data layer for TRAIN (is_train) or TEST: (index, layer)."""
        phase = "TRAIN" if is_train else "TEST"
        for i, layer in enumerate(self._net().get("layer", [])):
            t = prototxt.get(layer, "type")
            if t in ("MemoryData", "CoSData", "Data") and phase in prototxt.layer_phases(layer):
                return i, layer
        raise ValueError("Config: the net has no MemoryData or CoSData layer in phase %s" % phase)

    @property
    def train_data_layer_id(self):
        return self.data_layer(True)[0]

    @property
    def test_data_layer_id(self):
        return self.data_layer(False)[0]

    def __repr__(self):
        return "Config(%s)" % ", ".join("%s=%r" % kv for kv in sorted(self._v.items()))
