"""crema.spark.Config: CaffeOnSpark's Config, with its command-line flags
and property names (protoFile, modelPath, clusterSize, features, ...). The
solver and net prototxts are read by libcrema (crema.Message): the same
reader, upgrades and NetState rules as the engine."""
import os
import re
import sys

from ..proto import Message

# flag -> (property, kind, default); kinds: str, int, bool (a bare flag), list
_FLAGS = {
    "conf": ("protoFile", str, ""),
    "model": ("modelPath", str, ""),
    "train": ("isTraining", bool, False),
    "test": ("isTest", bool, False),
    "features": ("features", list, []),
    "label": ("label", str, ""),
    "outputFormat": ("outputFormat", str, "json"),
    "output": ("outputPath", str, "output"),
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
DATA_TYPES = ("MemoryData", "CoSData", "Data")


def local_path(uri):
    """A file: URI (or plain path) as a local absolute path; None for other schemes."""
    if uri.startswith("file://"):
        return uri[len("file://"):] or "/"
    if uri.startswith("file:"):
        return os.path.abspath(uri[len("file:"):])
    if "://" in uri:
        return None
    return os.path.abspath(uri)


def _warn(msg):
    sys.stderr.write("crema.spark: %s\n" % msg)


class JavaMessage:
    """A crema.Message read through the getters of protobuf's Java classes,
    as CaffeOnSpark's Config.solverParameter and netParam were:
    getTestIter(0), getTestIterCount(), getTestIterList(), hasTestInterval(),
    getMaxIter(), getLayer(2).getName(). msg is the crema.Message itself."""

    def __init__(self, msg, prefix=""):
        self.msg = msg
        self._prefix = prefix

    def _path(self, camel):
        return self._prefix + re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()

    def _value(self, path, ftype):
        if ftype.startswith("caffe."):
            return JavaMessage(self.msg, path + ".")
        v = self.msg.get(path)
        if v is None:
            return None
        if ftype == "bool":
            return v == "true"
        if ftype in ("float", "double"):
            return float(v)
        if ftype.endswith("int32") or ftype.endswith("int64") or ftype.endswith("fixed32") or \
                ftype.endswith("fixed64"):
            return int(v)
        return v

    def __getattr__(self, name):
        m = re.match(r"(get|has)([A-Z]\w*?)(Count|List)?$", name)
        if not m:
            raise AttributeError(name)
        kind, camel, suffix = m.groups()
        path = self._path(camel)
        ftype, repeated = self.msg.field(path)
        if kind == "has":
            return lambda: self.msg.has(path)
        if suffix == "Count":
            return lambda: self.msg.count(path)
        if suffix == "List":
            return lambda: [self._value("%s[%d]" % (path, i), ftype) for i in range(self.msg.count(path))]
        if repeated:
            return lambda i: self._value("%s[%d]" % (path, i), ftype)
        return lambda: self._value(path, ftype)

    def __str__(self):
        return self.msg.text() if not self._prefix else (self.msg.get(self._prefix[:-1]) or "")


class Config:
    """Config(spark_or_sc, args): args is CaffeOnSpark's command line (a
    list like ["-conf", "solver.prototxt", "-train", "-clusterSize", "2"])
    or a dict {"-conf": ..., "clusterSize": "2"}, read as CaffeOnSpark's
    Config read them. Properties keep CaffeOnSpark's names and can be set:
    conf.clusterSize = 2, conf.features = ["ip1"]. As in CaffeOnSpark, the
    label blob is one of the features, and -test and -features exclude each
    other (the one given last wins)."""

    def __init__(self, sc=None, args=None):
        v = {p: (list(d) if k is list else d) for p, k, d in _FLAGS.values()}
        # CaffeOnSpark's field defaults; its command-line constructor sets
        # label "" and output "output" unless given
        v.update(label="label", outputPath="", devices=0, clusterSize=0, connection="")
        object.__setattr__(self, "_v", v)
        object.__setattr__(self, "_isFeature", False)
        object.__setattr__(self, "sc", sc)
        object.__setattr__(self, "_cache", {})
        if args is None:
            return
        if isinstance(args, dict):
            flat = []
            for k, val in args.items():
                k = str(k)
                name = k.lstrip("-")
                flat.append(k if k.startswith("-") else "-" + k)
                # a flag's value is not read (CaffeOnSpark passed it on to a
                # parser that left it unread)
                if _FLAGS.get(name, (None, None))[1] is not bool and val is not None:
                    flat.append(",".join(map(str, val)) if isinstance(val, (list, tuple)) else str(val))
            args = flat
        self._parse([str(a) for a in args])

    def _parse(self, args):
        got = {}
        rest = []
        i = 0
        while i < len(args):
            a = args[i]
            if not a.startswith("-") or a == "-":
                rest.append(a)
                i += 1
                continue
            name = a.lstrip("-")
            val = None
            if "=" in name:
                name, val = name.split("=", 1)
            if name not in _FLAGS:
                raise ValueError("Config: unknown option -%s (CaffeOnSpark's options: %s)"
                                 % (name, ", ".join("-" + k for k in sorted(_FLAGS))))
            kind = _FLAGS[name][1]
            if kind is bool:
                got[name] = True
            else:
                if val is None:
                    if i + 1 >= len(args):
                        raise ValueError("Config: -%s needs a value" % name)
                    i += 1
                    val = args[i]
                got[name] = val
            i += 1
        if rest:
            _warn("Config: ignoring %s (not an option's value)" % " ".join(repr(r) for r in rest))

        def typed(name):
            kind = _FLAGS[name][1]
            val = got[name]
            try:
                return [s for s in val.split(",") if s] if kind is list else kind(val)
            except ValueError:
                raise ValueError("Config: -%s %r is not a %s" % (name, val, kind.__name__)) from None

        v = self._v
        for name, (prop, kind, default) in _FLAGS.items():
            if name in ("features", "label", "test", "clusterSize", "lmdb_partitions"):
                continue
            v[prop] = typed(name) if name in got else (list(default) if kind is list else default)
        # the order of CaffeOnSpark's Config: test, then features (so features
        # wins when both are given), label before features
        self.isTest = "test" in got
        self.isFeature = "features" in got
        self.label = typed("label") if "label" in got else ""
        self.clusterSize = self._cluster_size(typed("clusterSize") if "clusterSize" in got else None)
        if "features" in got:
            self.features = typed("features")
        else:
            v["features"] = []
        self.lmdb_partitions = typed("lmdb_partitions") if "lmdb_partitions" in got else self.clusterSize

    def _cluster_size(self, given):
        """CaffeOnSpark's rule: dynamic allocation's minExecutors, YARN's
        spark.executor.instances, else -clusterSize (1 when not given)."""
        conf = None
        try:
            sc = getattr(self.sc, "sparkContext", self.sc)
            conf = sc.getConf() if sc is not None else None
        except Exception:  # not a SparkContext: the flag alone decides
            conf = None
        if conf is not None:
            if conf.get("spark.dynamicAllocation.enabled", "false") == "true":
                lo = int(conf.get("spark.dynamicAllocation.minExecutors", "1"))
                hi = int(conf.get("spark.dynamicAllocation.maxExecutors", "1"))
                if self._v["isTraining"] and lo != hi:
                    raise ValueError("Config: spark.dynamicAllocation.maxExecutors and minExecutors must be "
                                     "identical for training (%d and %d)" % (hi, lo))
                return lo
            if (conf.get("spark.master", "") or "").startswith("yarn"):
                return int(conf.get("spark.executor.instances", "1"))
        return given if given is not None else 1

    def __getattr__(self, name):
        if name == "isFeature":
            return self._isFeature
        if name in self._v:
            return self._v[name]
        if name == "solverParameter":
            return JavaMessage(self._solver())
        if name == "netParam":
            return JavaMessage(self._net())
        if name in ("train_data_layer_id", "test_data_layer_id"):
            try:
                return self.data_layer(name.startswith("train"))[0]
            except ValueError:
                return -1
        raise AttributeError("Config has no attribute %r" % name)

    def __setattr__(self, name, value):
        if name not in _PROPS:
            raise AttributeError("Config: %r is not a CaffeOnSpark option" % name)
        self._cache.clear()
        v = self._v
        if name == "features":
            if isinstance(value, str):
                value = [s for s in value.split(",") if s]
            value = list(value or [])
            if v["label"] and v["label"] not in value:
                value.append(v["label"])
        elif name == "label":
            if value and value not in v["features"]:
                v["features"] = v["features"] + [value]
        elif name == "isTest":
            if value and self._isFeature:
                _warn("both -test and -features are given: test only (the last given), no features")
                object.__setattr__(self, "_isFeature", False)
        elif name == "isFeature":
            if value and v["isTest"]:
                _warn("both -test and -features are given: features only (the last given), no test")
                v["isTest"] = False
            object.__setattr__(self, "_isFeature", bool(value))
            return
        v[name] = value

    # ---- the prototxts, read on the driver by libcrema ----

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
        if "solver" not in self._cache:
            sp = Message("SolverParameter", self.solver_text(), filename=self.solver_path())
            sp.upgrade()
            self._cache["solver"] = sp
        return self._cache["solver"]

    def net_path(self):
        sp = self._solver()
        net = sp.get("net") or sp.get("train_net")
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
        if "net" not in self._cache:
            np_ = Message("NetParameter", self.net_text(), filename=self.net_path())
            np_.upgrade()
            self._cache["net"] = np_
        return self._cache["net"]

    def net_state(self, is_train):
        """The NetState the solver builds its TRAIN (or first TEST) net with,
        as Caffe's Solver: the phase, then the net's own state, then the
        solver's train_state (or test_state[0])."""
        st = Message("NetState", "phase: %s" % ("TRAIN" if is_train else "TEST"))
        net_state = self._net().get("state")
        if net_state is not None:
            st.merge(net_state)
        sp = self._solver()
        extra = sp.get("train_state") if is_train else sp.get("test_state[0]")
        if extra is not None:
            st.merge(extra)
        return st

    def layers_in_state(self, is_train):
        """Indices of the net's layers that Caffe's FilterNet keeps for the
        solver's TRAIN (or TEST) state, by libcrema's filter."""
        net, st = self._net(), self.net_state(is_train)
        keep = []
        for i in range(net.count("layer")):
            one = Message("NetParameter")
            one.add("layer", net.message("layer[%d]" % i, "LayerParameter"))
            if one.filter_net(st).count("layer"):
                keep.append(i)
        return keep

    def data_layer(self, is_train):
        """The net's data layer for TRAIN (is_train) or TEST: (index in the
        net, the layer as a LayerParameter crema.Message)."""
        key = ("data_layer", is_train)
        if key not in self._cache:
            net = self._net()
            for i in self.layers_in_state(is_train):
                if net.get("layer[%d].type" % i) in DATA_TYPES:
                    self._cache[key] = (i, net.message("layer[%d]" % i, "LayerParameter"))
                    break
            else:
                raise ValueError("Config: the net has no MemoryData or CoSData layer in phase %s"
                                 % ("TRAIN" if is_train else "TEST"))
        return self._cache[key]

    def __repr__(self):
        v = dict(self._v, isFeature=self._isFeature)
        return "Config(%s)" % ", ".join("%s=%r" % kv for kv in sorted(v.items()))
