"""The classes and functions pycaffe's compiled module (_caffe.so) exports,
over libcrema: Net (its low-level half; pycaffe.py adds the rest, as in
pycaffe), Blob, Layer, the solvers, modes and the layer type list."""
import ctypes
import os
import sys
import time

import numpy as np

import crema
from crema import _capi as _crema_capi
from crema._capi import decode, encode, encode_path, lib
from crema.net import _as_view, _BorrowedHandle, _Handle
from crema.solver import _SolverHandle

from . import _capi, _layer
from ._capi import BOTTOM, PARAM, TOP, CaffeError  # noqa: F401
from ._layer import Layer  # noqa: F401  (caffe.Layer)

__version__ = "1.0.0"  # the Caffe release whose Python interface this is

TRAIN = 0
TEST = 1


def _check(rc):
    """Raises for a non-zero crema_status: the exception a Python layer
    raised during the call, else CaffeError with libcrema's message."""
    if rc:
        name = lib.crema_status_name(rc)
        err = CaffeError(rc, _crema_capi.errmsg() or "libcrema failed", name.decode() if name else None)
        _layer.raise_pending(err)
        raise err


def _call(fn, *args):
    _layer.clear_pending()
    _check(fn(*args))


# ---- modes ----

def set_mode_cpu():
    crema.set_mode_cpu()


def set_mode_gpu():
    crema.set_mode_gpu()


def set_device(device_id):
    crema.set_device(device_id)


def set_random_seed(seed):
    """Seeds the fillers of nets (and solvers without random_seed) made from
    now on."""
    lib.crema_set_random_seed(int(seed) & 0xFFFFFFFFFFFFFFFF)


def layer_type_list():
    """The layer types nets can use, sorted as Caffe's LayerTypeList."""
    return [decode(lib.crema_layer_type_name(i)) for i in range(lib.crema_layer_type_count())]


_log_level = [None]


def init_log(level=0):
    """Caffe's log lines (solver progress) go to stderr from level INFO (0)."""
    _log_level[0] = int(level)


def log(message):
    sys.stderr.write("%s\n" % message)


def _solver_logs():
    if _log_level[0] is not None:
        return _log_level[0] <= 0
    try:
        return int(os.environ.get("GLOG_minloglevel", "0")) <= 0
    except ValueError:
        return True


class Timer:
    """Wall-clock milliseconds between start() and stop() (Caffe's Timer)."""

    def __init__(self):
        self._t0 = None
        self._ms = 0.0

    def start(self):
        self._t0 = time.perf_counter()

    def stop(self):
        if self._t0 is not None:
            self._ms = (time.perf_counter() - self._t0) * 1e3
            self._t0 = None

    @property
    def ms(self):
        if self._t0 is not None:
            self.stop()
        return self._ms


# ---- blobs ----

def _legacy_dim(shape, index):
    """Blob::LegacyShape: 1 past the axes, for blobs of up to 4 axes."""
    if len(shape) > 4:
        raise CaffeError(4, "cannot use legacy accessors on a blob with %d axes" % len(shape), "SHAPE")
    if index >= len(shape) or index < -len(shape):
        return 1
    return shape[index]


class Blob:
    """A blob of a net, one of a layer's parameter blobs, or a Python
    layer's bottom or top: `data` and `diff` are numpy views of crema's
    memory, fetched on each access (pycaffe's are too); assigning to them
    copies in. A view keeps the net's memory alive, and is valid until the
    blob is reshaped."""

    __slots__ = ("_locate", "_resize", "_what")

    def __init__(self, locate, resize, what):
        self._locate = locate
        self._resize = resize
        self._what = what

    @classmethod
    def _of_net(cls, net, name):
        """Blob `name` of the net behind `net` (a _NetRef)."""
        key = encode(name)

        def locate():
            h = net._live()
            b = _crema_capi.Blob()
            _check(lib.crema_net_blob(h.ptr, key, ctypes.byref(b)))
            return b, h

        def resize(shape):
            arr, n = _capi.int_array(shape)
            _check(lib.crema_net_reshape_blob(net._live().ptr, key, n, arr))
        return cls(locate, resize, name)

    @classmethod
    def _of_param(cls, net, layer, index):
        """Parameter blob `index` of `layer` of the net behind `net` (a _NetRef)."""
        key = encode(layer)

        def locate():
            h = net._live()
            b = _crema_capi.Blob()
            _check(lib.crema_net_param(h.ptr, key, index, ctypes.byref(b)))
            return b, h

        def resize(shape):
            raise CaffeError(5, "crema cannot reshape parameter blob %d of layer %s" % (index, layer),
                             "UNSUPPORTED")
        return cls(locate, resize, "%s[%d]" % (layer, index))

    @classmethod
    def _of_layer(cls, layer, which, index):
        def handle():
            h = layer.__dict__.get("_crema_handle")
            if not h:
                raise CaffeError(3, "layer %s: its net is gone" % layer.__dict__.get("_crema_name", "?"),
                                 "INVALID")
            return h

        def locate():
            b = _crema_capi.Blob()
            _check(lib.crema_layer_blob(handle(), which, index, ctypes.byref(b)))
            return b, _layer.owner_of(layer)

        def resize(shape):
            arr, n = _capi.int_array(shape)
            _check(lib.crema_layer_reshape(handle(), which, index, n, arr))
        kind = ("bottom", "top", "param")[which]
        return cls(locate, resize, "%s.%s[%d]" % (layer.__dict__.get("_crema_name", "?"), kind, index))

    def _array(self, diff):
        b, owner = self._locate()
        shape = tuple(b.shape[: b.num_axes])
        if b.count == 0:
            return np.zeros(shape, np.float32)
        return _as_view(b.diff if diff else b.data, shape, owner)

    @property
    def data(self):
        return self._array(False)

    @data.setter
    def data(self, value):
        self._array(False)[...] = value

    @property
    def diff(self):
        return self._array(True)

    @diff.setter
    def diff(self, value):
        self._array(True)[...] = value

    @property
    def shape(self):
        b, _ = self._locate()
        return tuple(b.shape[: b.num_axes])

    @property
    def num_axes(self):
        return len(self.shape)

    @property
    def count(self):
        b, _ = self._locate()
        return int(b.count)

    @property
    def num(self):
        return _legacy_dim(self.shape, 0)

    @property
    def channels(self):
        return _legacy_dim(self.shape, 1)

    @property
    def height(self):
        return _legacy_dim(self.shape, 2)

    @property
    def width(self):
        return _legacy_dim(self.shape, 3)

    def reshape(self, *shape):
        """Gives the blob a new shape (Blob::Reshape); a net's other blobs
        follow at its next forward() or reshape()."""
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = tuple(shape[0])
        self._resize(shape)

    def __repr__(self):
        return "<caffe.Blob %s %s>" % (self._what, self.shape)


class BlobVec(list):
    """A list of Blobs (pycaffe's BlobVec) for a layer's parameters."""

    def add_blob(self, *shape):
        raise CaffeError(5, "only Python layers can add blobs (in setup)", "UNSUPPORTED")


class _NetLayer:
    """A layer of a net built in C (pycaffe's Layer): its type and
    parameter blobs."""

    def __init__(self, net, index):
        self._type = net._layer_types[index]
        name = net._layer_names[index]
        self.blobs = BlobVec(Blob._of_param(net._ref, name, j) for j in range(net._n_params[index]))

    @property
    def type(self):
        return self._type

    def __repr__(self):
        return "<caffe.Layer %s (%d blobs)>" % (self._type, len(self.blobs))


# ---- nets ----

class _NetRef:
    """What a net's Blobs hold to reach it: its handle, without the Net
    (so that Blobs and their Net make no reference cycle and the net's
    memory goes as soon as neither is used)."""

    __slots__ = ("h",)

    def __init__(self, h):
        self.h = h

    def _live(self):
        if self.h is None or not self.h.ptr:
            raise CaffeError(3, "the net is closed", "INVALID")
        return self.h


_PATH_TYPES = (str, bytes, os.PathLike)


def _phase(phase):
    if isinstance(phase, bool) or phase not in (TRAIN, TEST):
        raise ValueError("phase must be caffe.TRAIN or caffe.TEST, not %r" % (phase,))
    return int(phase)


class Net:
    """pycaffe's Net: Net(network_file, phase, level=0, stages=None,
    weights=None), or the old Net(network_file, pretrained_file, phase)."""

    def __init__(self, network_file, *args, **kwargs):
        self._h = None
        if args and isinstance(args[0], _PATH_TYPES):
            if len(args) != 2 or kwargs:
                raise TypeError("Net(network_file, pretrained_param_file, phase) takes exactly these three")
            weights, phase = args
            level, stages = 0, None
            sys.stderr.write("caffe.Net: deprecated use of the Python interface; use this instead (with the named "
                             "\"weights\" parameter): Net('%s', %s, weights='%s')\n"
                             % (os.fsdecode(network_file), phase, os.fsdecode(weights)))
        else:
            names = ("phase", "level", "stages", "weights")
            if len(args) > len(names):
                raise TypeError("Net() takes at most 5 arguments")
            given = dict(zip(names, args))
            for k, v in kwargs.items():
                if k not in names or k in given:
                    raise TypeError("Net() got an unexpected or repeated argument %r" % k)
                given[k] = v
            if "phase" not in given:
                raise TypeError("Net() needs the phase: caffe.TRAIN or caffe.TEST")
            phase, level = given["phase"], given.get("level", 0)
            stages, weights = given.get("stages"), given.get("weights")
        phase = _phase(phase)
        stages = [encode(s) for s in (stages or [])]
        st = (ctypes.c_char_p * max(len(stages), 1))(*stages)
        h = _Handle(None)
        ptr = ctypes.c_void_p()
        w = None if weights is None else encode_path(weights, "weights")
        with _layer.building(h):
            _call(lib.crema_net_open_state, encode_path(network_file, "prototxt"), w, phase, int(level), st,
                  len(stages), ctypes.byref(ptr))
        h.ptr = ptr.value
        self._h = h
        self._init(phase)

    @classmethod
    def _borrow(cls, ptr, owner, phase):
        net = cls.__new__(cls)
        net._h = _BorrowedHandle(ptr, owner)
        net._init(phase)
        return net

    def _init(self, phase):
        p = self._h.ptr
        self.phase = phase
        self._callbacks = {"before_forward": [], "after_forward": [], "before_backward": [], "after_backward": []}
        n = lib.crema_net_num_layers(p)
        self._layer_names = [decode(lib.crema_net_layer_name(p, i)) for i in range(n)]
        self._layer_types = [decode(lib.crema_net_layer_type(p, i)) for i in range(n)]
        self._n_params = [lib.crema_net_layer_num_params(p, i) for i in range(n)]
        self._blob_names = [decode(lib.crema_net_blob_name(p, i)) for i in range(lib.crema_net_num_blobs(p))]
        index = {name: i for i, name in enumerate(self._blob_names)}
        self._bottoms = [[index[decode(lib.crema_net_layer_bottom_name(p, i, j))]
                          for j in range(lib.crema_net_layer_num_bottoms(p, i))] for i in range(n)]
        self._tops = [[index[decode(lib.crema_net_layer_top_name(p, i, j))]
                       for j in range(lib.crema_net_layer_num_tops(p, i))] for i in range(n)]
        self._inputs = [index[decode(lib.crema_net_input_name(p, i))] for i in range(lib.crema_net_num_inputs(p))]
        self._outputs = [index[decode(lib.crema_net_output_name(p, i))]
                         for i in range(lib.crema_net_num_outputs(p))]
        self._blob_loss_weights = [float(lib.crema_net_blob_loss_weight(p, i)) for i in range(len(index))]
        self._ref = _NetRef(self._h)
        self._blobs = [Blob._of_net(self._ref, name) for name in self._blob_names]
        layers = []
        for i in range(n):
            obj = _layer.from_state(lib.crema_net_layer_state(p, i))
            layers.append(obj if obj is not None else _NetLayer(self, i))
        self.layers = layers

    def _live(self):
        return self._ref._live()

    def _bottom_ids(self, i):
        return list(self._bottoms[i])

    def _top_ids(self, i):
        return list(self._tops[i])

    def _forward(self, start, end):
        """Runs layers start..end (indices) forward; returns the loss."""
        h = self._live()
        loss = ctypes.c_float()
        before, after = self._callbacks["before_forward"], self._callbacks["after_forward"]
        if not before and not after:
            _call(lib.crema_net_forward_from_to, h.ptr, int(start), int(end), ctypes.byref(loss))
            return float(loss.value)
        total = 0.0
        for i in range(int(start), int(end) + 1):
            for f in before:
                f(i)
            _call(lib.crema_net_forward_from_to, h.ptr, i, i, ctypes.byref(loss))
            total += loss.value
            for f in after:
                f(i)
        return float(total)

    def _backward(self, start, end):
        h = self._live()
        before, after = self._callbacks["before_backward"], self._callbacks["after_backward"]
        if not before and not after:
            _call(lib.crema_net_backward_from_to, h.ptr, int(start), int(end))
            return
        for i in range(int(start), int(end) - 1, -1):
            for f in before:
                f(i)
            _call(lib.crema_net_backward_from_to, h.ptr, i, i)
            for f in after:
                f(i)

    def before_forward(self, fn):
        """fn(layer_index) runs before each layer's forward."""
        self._callbacks["before_forward"].append(fn)

    def after_forward(self, fn):
        self._callbacks["after_forward"].append(fn)

    def before_backward(self, fn):
        self._callbacks["before_backward"].append(fn)

    def after_backward(self, fn):
        self._callbacks["after_backward"].append(fn)

    def reshape(self):
        """Reshapes every layer after its bottoms (after blob reshapes)."""
        _call(lib.crema_net_reshape, self._live().ptr)

    def clear_param_diffs(self):
        _call(lib.crema_net_clear_param_diffs, self._live().ptr)

    def copy_from(self, filename):
        """Loads weights by layer name: a .caffemodel (HDF5 when the name
        ends in .h5)."""
        _call(lib.crema_net_load_weights, self._live().ptr, encode_path(filename, "weights"))

    def share_with(self, other):
        """Layers of this net named as layers of `other` use other's
        parameter data."""
        _call(lib.crema_net_share_with, self._live().ptr, other._live().ptr)

    def save(self, filename):
        """Writes the weights as a binary .caffemodel."""
        _call(lib.crema_net_save_weights, self._live().ptr, encode_path(filename, "output"))

    def save_hdf5(self, filename):
        _call(lib.crema_net_save_hdf5, self._live().ptr, encode_path(filename, "output"), 0)

    def load_hdf5(self, filename):
        _call(lib.crema_net_load_hdf5, self._live().ptr, encode_path(filename, "weights"))

    def _set_input_arrays(self, data, labels):
        """Feeds the net's first layer, a MemoryData layer: data N x C x H x
        W and labels N x 1 x 1 x 1, C-contiguous float32, N a multiple of
        its batch size."""
        if not self._layer_types or self._layer_types[0] != "MemoryData":
            raise CaffeError(3, "set_input_arrays may only be called if the first layer is a MemoryDataLayer",
                             "INVALID")
        item = self._blobs[self._tops[0][0]].shape[1:]
        for what, arr, dims in (("data array", data, item), ("labels array", labels, (1, 1, 1))):
            if not isinstance(arr, np.ndarray):
                raise CaffeError(3, "%s must be a numpy array" % what, "INVALID")
            if not arr.flags["C_CONTIGUOUS"]:
                raise CaffeError(3, "%s must be C contiguous" % what, "INVALID")
            if arr.ndim != 4:
                raise CaffeError(4, "%s must be 4-d" % what, "SHAPE")
            if arr.dtype != np.float32:
                raise CaffeError(3, "%s must be float32" % what, "INVALID")
            for k, (got, want) in enumerate(zip(arr.shape[1:], dims)):
                if got != want:
                    raise CaffeError(4, "%s has wrong %s" % (what, ("number of channels", "height", "width")[k]),
                                     "SHAPE")
        if data.shape[0] != labels.shape[0]:
            raise CaffeError(4, "data and labels must have the same first dimension", "SHAPE")
        batch = self._blobs[self._tops[0][0]].shape[0]
        if data.shape[0] % batch:
            raise CaffeError(4, "first dimensions of input arrays must be a multiple of batch size", "SHAPE")
        _call(lib.crema_net_set_memory_data, self._live().ptr, encode(self._layer_names[0]),
              data.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
              labels.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), int(data.shape[0]))


# ---- solvers ----

class Solver:
    """pycaffe's Solver: its train `net`, `test_nets`, `iter`, step(n),
    solve(resume_file=None), restore(state), snapshot(), apply_update().
    Made by the classes below (each runs its own update rule, whatever the
    file's `type`) or by get_solver (the file's type)."""

    _type = None

    def __init__(self, filename):
        self._open(filename, self._type)

    def _open(self, filename, type_):
        self._filename = filename
        h = _SolverHandle(None)
        ptr = ctypes.c_void_p()
        with _layer.building(h):
            _call(lib.crema_solver_open_type, encode_path(filename, "solver prototxt"),
                  None if type_ is None else type_.encode(), 1 if _solver_logs() else 0, ctypes.byref(ptr))
        h.ptr = ptr.value
        self._h = h
        self.net = Net._borrow(lib.crema_solver_net(h.ptr), h, TRAIN)
        self.test_nets = [Net._borrow(lib.crema_solver_test_net(h.ptr, i), h, TEST)
                          for i in range(lib.crema_solver_num_test_nets(h.ptr))]
        self._param = None

    def _live(self):
        return self._h.ptr

    @property
    def iter(self):
        return lib.crema_solver_iter(self._live())

    @property
    def param(self):
        """The SolverParameter (a caffe_pb2 message), as read and upgraded."""
        if self._param is None:
            from google.protobuf import text_format
            from .proto import caffe_pb2
            m = crema.Message.read("SolverParameter", self._filename)
            m.upgrade()
            self._param = text_format.Parse(m.text(), caffe_pb2.SolverParameter())
        return self._param

    def step(self, iters):
        _call(lib.crema_solver_step, self._live(), int(iters))

    def solve(self, resume_file=None):
        _call(lib.crema_solver_solve, self._live(),
              None if resume_file is None else encode_path(resume_file, "solver state"))

    def restore(self, state_file):
        _call(lib.crema_solver_restore, self._live(), encode_path(state_file, "solver state"))

    def snapshot(self):
        _call(lib.crema_solver_snapshot, self._live())

    def apply_update(self):
        """One update from the current gradients (Solver::ApplyUpdate),
        without advancing `iter`."""
        _call(lib.crema_solver_apply_update, self._live())


class SGDSolver(Solver):
    _type = "SGD"


class NesterovSolver(Solver):
    _type = "Nesterov"


class AdaGradSolver(Solver):
    _type = "AdaGrad"


class RMSPropSolver(Solver):
    _type = "RMSProp"


class AdaDeltaSolver(Solver):
    _type = "AdaDelta"


class AdamSolver(Solver):
    _type = "Adam"


_SOLVERS = {c._type: c for c in (SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver, AdaDeltaSolver,
                                 AdamSolver)}


def get_solver(filename):
    """The solver of a solver prototxt, of the type the file names."""
    m = crema.Message.read("SolverParameter", filename)
    m.upgrade()
    cls = _SOLVERS.get(m.get("type", "SGD"), Solver)
    s = cls.__new__(cls)
    s._open(filename, None)
    return s
