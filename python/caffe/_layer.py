"""Python layers: `type: "Python"` layers of a net run a caffe.Layer
subclass through callbacks that libcrema calls (crema_register_layer).

The provider is registered when `caffe` is imported and unregistered at
interpreter exit (after which libcrema frees such layers without calling
back). Each layer object lives in _layers, keyed by the state id libcrema
hands back, until its net is freed. An exception raised in a layer is kept
(per thread) and raised again by the call into libcrema that ran it."""
import atexit
import ctypes
import importlib
import itertools
import threading
import traceback
import weakref

from crema._capi import lib

from . import _capi
from ._capi import BOTTOM, PARAM, TOP, CaffeError, check
from .proto import caffe_pb2

_layers = {}
_ids = itertools.count(1)
_local = threading.local()


class Layer:
    """The base class of Python layers (pycaffe's caffe.Layer). A net
    builds one per `type: "Python"` layer from python_param { module layer
    param_str }: cls(layer_param) (a caffe_pb2.LayerParameter), then sets
    `param_str` and `phase` and calls setup(bottom, top); reshape(bottom,
    top) before every forward(bottom, top); backward(top, propagate_down,
    bottom). bottom and top are lists of caffe.Blob; `self.blobs` holds the
    layer's learnable blobs (`self.blobs.add_blob(*shape)` in setup)."""

    def __init__(self, layer_param=None):
        self.layer_param = layer_param

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        pass

    @property
    def type(self):
        return "Python"

    @property
    def blobs(self):
        return LayerBlobs(self)


class LayerBlobs:
    """A Python layer's learnable blobs (pycaffe's BlobVec)."""

    def __init__(self, layer):
        self._layer = layer

    def _handle(self):
        h = self._layer.__dict__.get("_crema_handle")
        if not h:
            raise CaffeError(3, "layer %s: its net is gone" % self._layer.__dict__.get("_crema_name", "?"),
                             "INVALID")
        return h

    def __len__(self):
        return lib.crema_layer_count(self._handle(), PARAM)

    def __getitem__(self, i):
        n = len(self)
        if isinstance(i, slice):
            return [self[j] for j in range(n)[i]]
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("layer blob index %d out of range (%d blobs)" % (i, n))
        return layer_blob(self._layer, PARAM, i)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def add_blob(self, *shape):
        """Adds a learnable blob of this shape (zeros); in setup only."""
        arr, n = _capi.int_array(shape)
        check(lib.crema_layer_add_param(self._handle(), n, arr))

    def __repr__(self):
        return "<caffe.BlobVec of %d blobs>" % len(self)


def layer_blob(layer, which, i):
    from ._caffe import Blob
    return Blob._of_layer(layer, which, i)


def _blob_list(layer, handle, which):
    return [layer_blob(layer, which, i) for i in range(lib.crema_layer_count(handle, which))]


# ---- owners: what keeps a layer's net alive ----

def building(owner):
    """A context in which nets libcrema builds on this thread belong to
    `owner` (the handle object that frees them): views of their Python
    layers' blobs keep it alive."""
    return _Building(owner)


class _Building:
    def __init__(self, owner):
        self.owner = owner

    def __enter__(self):
        self.prev = getattr(_local, "owner", None)
        _local.owner = self.owner
        _local.pending = None

    def __exit__(self, *exc):
        _local.owner = self.prev


def owner_of(layer):
    ref = layer.__dict__.get("_crema_owner")
    return ref() if ref is not None else None


def from_state(state):
    """The layer object of a crema_net_layer_state value, or None."""
    return _layers.get(state) if state else None


# ---- exceptions ----

def clear_pending():
    _local.pending = None


def raise_pending(error):
    """Raises the exception a Python layer raised during the libcrema call
    that failed with `error`, if one did; else returns."""
    exc = getattr(_local, "pending", None)
    _local.pending = None
    if exc is None:
        return
    if hasattr(exc, "add_note"):
        exc.add_note("(in libcrema: %s)" % error)
    raise exc


def _fail(handle, exc):
    _local.pending = exc
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return lib.crema_layer_fail(handle, 3, text.encode("utf-8", "replace"))


# ---- the callbacks ----

def _layer_param(handle):
    buf, n = ctypes.c_void_p(), ctypes.c_size_t()
    check(lib.crema_layer_param(handle, ctypes.byref(buf), ctypes.byref(n)))
    try:
        raw = ctypes.string_at(buf.value, n.value)
    finally:
        lib.crema_free(buf)
    return caffe_pb2.LayerParameter.FromString(raw)


def _create(user, handle, state):
    try:
        lp = _layer_param(handle)
        pp = lp.python_param
        if not pp.module or not pp.layer:
            raise ValueError("layer %s: python_param needs module and layer (the class name)" % lp.name)
        cls = getattr(importlib.import_module(pp.module), pp.layer)
        obj = cls(lp)
        d = obj.__dict__
        d["_crema_handle"] = handle
        d["_crema_name"] = lp.name
        owner = getattr(_local, "owner", None)
        d["_crema_owner"] = weakref.ref(owner) if owner is not None else None
        d["_crema_phase"] = lp.phase
        d["_crema_param_str"] = pp.param_str
        key = next(_ids)
        _layers[key] = obj
        state[0] = key
        return 0
    except BaseException as e:  # noqa: B902 - every exception goes back to the caller
        return _fail(handle, e)


def _setup(state, handle):
    obj = _layers[state]
    try:
        obj.param_str = obj.__dict__["_crema_param_str"]
        obj.phase = obj.__dict__["_crema_phase"]
        obj.setup(_blob_list(obj, handle, BOTTOM), _blob_list(obj, handle, TOP))
        return 0
    except BaseException as e:  # noqa: B902
        return _fail(handle, e)


def _reshape(state, handle):
    obj = _layers[state]
    try:
        obj.reshape(_blob_list(obj, handle, BOTTOM), _blob_list(obj, handle, TOP))
        return 0
    except BaseException as e:  # noqa: B902
        return _fail(handle, e)


def _forward(state, handle):
    obj = _layers[state]
    try:
        obj.forward(_blob_list(obj, handle, BOTTOM), _blob_list(obj, handle, TOP))
        return 0
    except BaseException as e:  # noqa: B902
        return _fail(handle, e)


def _backward(state, handle, propagate_down):
    obj = _layers[state]
    try:
        bottom = _blob_list(obj, handle, BOTTOM)
        pd = [bool(propagate_down[i]) for i in range(len(bottom))]
        obj.backward(_blob_list(obj, handle, TOP), pd, bottom)
        return 0
    except BaseException as e:  # noqa: B902
        return _fail(handle, e)


def _destroy(state):
    obj = _layers.pop(state, None)
    if obj is not None:
        obj.__dict__["_crema_handle"] = None


_callbacks = _capi.LayerCallbacks(_capi.CREATE(_create), _capi.VERB(_setup), _capi.VERB(_reshape),
                                  _capi.VERB(_forward), _capi.BACKWARD(_backward), _capi.DESTROY(_destroy))


def _unregister():
    lib.crema_register_layer(b"Python", None, None)


check(lib.crema_register_layer(b"Python", ctypes.byref(_callbacks), None))
atexit.register(_unregister)
