"""crema.Net: a net built by libcrema, driven from Python (pycaffe's Net).

Blob arrays (`net.blobs[name].data`, `.diff`, `net.params[layer][i].data`)
are numpy VIEWS of the C buffers, not copies: writing into them writes into
the net. A view stays valid until the net reshapes that blob (a new input
shape, a layer that reshapes its tops in forward) or is closed; take
`.copy()` to keep values. What forward() and backward() return are copies.
"""
import ctypes
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from . import _capi
from ._capi import CremaError, check, decode, encode, encode_path, lib


def _c_path(p, what):
    """A path for C (encode_path: a NUL byte in it is refused)."""
    return encode_path(p, what)


TRAIN = 0
TEST = 1

_FLOAT = np.dtype(np.float32)


def _phase_code(phase):
    if isinstance(phase, str):
        p = phase.upper()
        if p in ("TRAIN", "TEST"):
            return TRAIN if p == "TRAIN" else TEST
    elif phase in (TRAIN, TEST) and not isinstance(phase, bool):
        return int(phase)
    raise ValueError("phase must be 'TRAIN' or 'TEST' (or crema.TRAIN / crema.TEST), not %r" % (phase,))


class _Handle:
    """Owns one crema_net*. Views of the net's buffers hold a reference to it,
    so the C net outlives every array that points into it."""

    def __init__(self, ptr):
        self.ptr = ptr

    def free(self):
        ptr, self.ptr = self.ptr, None
        if ptr:
            lib.crema_net_free(ptr)

    def __del__(self):
        self.free()


class _BorrowedHandle:
    """A crema_net* owned by someone else (a solver's nets): never freed
    here; it keeps its owner's handle alive instead."""

    def __init__(self, ptr, owner):
        self.ptr = ptr
        self._owner = owner

    def free(self):
        self.ptr = None
        self._owner = None


class _CArray:
    """A numpy array interface over C memory that keeps its owner alive."""

    def __init__(self, address, shape, owner):
        self.__array_interface__ = {
            "shape": tuple(shape),
            "typestr": _FLOAT.str,
            "data": (address, False),
            "version": 3,
        }
        self._owner = owner


def _as_view(ptr, shape, owner):
    address = ctypes.cast(ptr, ctypes.c_void_p).value
    return np.asarray(_CArray(address, shape, owner))


def _float_array(x, what):
    try:
        return np.ascontiguousarray(x, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise TypeError("%s: cannot be made a float32 array: %s" % (what, e)) from None


def _fptr(a):
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


class Blob:
    """A blob of a net (a named blob or a layer's parameter). `data` and
    `diff` are numpy views of the C memory, fetched afresh on each access;
    assigning to them (`blob.data = x` or `blob.data[...] = x`) copies into
    the net. `shape`, `count`, `num_axes` describe it now."""

    def __init__(self, net, name, param_index=None):
        self._net = net
        self._name = name
        self._index = param_index

    def _view(self):
        b = _capi.Blob()
        h = self._net._live()
        if self._index is None:
            check(lib.crema_net_blob(h.ptr, encode(self._name), ctypes.byref(b)))
        else:
            check(lib.crema_net_param(h.ptr, encode(self._name), self._index, ctypes.byref(b)))
        return b, h

    @property
    def shape(self):
        b, _ = self._view()
        return tuple(b.shape[: b.num_axes])

    @property
    def num_axes(self):
        return len(self.shape)

    @property
    def count(self):
        b, _ = self._view()
        return int(b.count)

    @property
    def data(self):
        b, h = self._view()
        return _as_view(b.data, b.shape[: b.num_axes], h)

    @data.setter
    def data(self, value):
        self.data[...] = value

    @property
    def diff(self):
        b, h = self._view()
        return _as_view(b.diff, b.shape[: b.num_axes], h)

    @diff.setter
    def diff(self, value):
        self.diff[...] = value

    def reshape(self, *shape):
        """Gives a net blob (normally an input) a new shape and reshapes the
        whole net after it; the values are left as they are."""
        if self._index is not None:
            raise CremaError(3, "parameter blobs of layer %s cannot be reshaped" % self._name, "INVALID")
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = tuple(shape[0])
        self._net._set_shape(self._name, shape, None)

    def __repr__(self):
        what = self._name if self._index is None else "%s[%d]" % (self._name, self._index)
        return "<crema.Blob %s %s>" % (what, self.shape)


class _Blobs(Mapping):
    def __init__(self, net):
        self._net = net

    def __getitem__(self, name):
        if name not in self._net._blob_names:
            raise KeyError(name)
        return Blob(self._net, name)

    def __iter__(self):
        return iter(self._net._blob_names)

    def __len__(self):
        return len(self._net._blob_names)


class _Params(Mapping):
    def __init__(self, net):
        self._net = net

    def __getitem__(self, layer):
        n = self._net._n_params.get(layer, 0)
        if not n:
            raise KeyError(layer)
        return [Blob(self._net, layer, i) for i in range(n)]

    def __iter__(self):
        return (name for name in self._net._layer_names if self._net._n_params[name])

    def __len__(self):
        return sum(1 for _ in self)


class Net:
    """A net built from a prototxt (text NetParameter) for phase 'TRAIN' or
    'TEST', with weights (.caffemodel, or .caffemodel.h5) loaded by layer name
    when given. Free it with close() or a `with` block; it is also freed when
    garbage-collected."""

    def __init__(self, prototxt, weights=None, phase="TEST"):
        self._h = None
        code = _phase_code(phase)
        ptr = ctypes.c_void_p()
        w = None if weights is None else _c_path(weights, "weights")
        check(lib.crema_net_open(_c_path(prototxt, "prototxt"), w, code, ctypes.byref(ptr)))
        self._h = _Handle(ptr.value)
        self.phase = "TRAIN" if code == TRAIN else "TEST"
        self.loss = None  # the loss of the last forward()
        self._read_structure()

    @classmethod
    def _borrow(cls, ptr, owner, phase):
        """A Net over a crema_net* that `owner` (a handle) frees."""
        net = cls.__new__(cls)
        net._h = _BorrowedHandle(ptr, owner)
        net.phase = phase
        net.loss = None
        net._read_structure()
        return net

    def _read_structure(self):
        p = self._h.ptr
        n = lib.crema_net_num_layers(p)
        self._layer_names = [decode(lib.crema_net_layer_name(p, i)) for i in range(n)]
        self._layer_types = [decode(lib.crema_net_layer_type(p, i)) for i in range(n)]
        self._n_params = {self._layer_names[i]: lib.crema_net_layer_num_params(p, i) for i in range(n)}
        self._bottoms = OrderedDict(
            (self._layer_names[i],
             [decode(lib.crema_net_layer_bottom_name(p, i, j)) for j in range(lib.crema_net_layer_num_bottoms(p, i))])
            for i in range(n))
        self._tops = OrderedDict(
            (self._layer_names[i],
             [decode(lib.crema_net_layer_top_name(p, i, j)) for j in range(lib.crema_net_layer_num_tops(p, i))])
            for i in range(n))
        self._blob_names = [decode(lib.crema_net_blob_name(p, i)) for i in range(lib.crema_net_num_blobs(p))]
        self._inputs = [decode(lib.crema_net_input_name(p, i)) for i in range(lib.crema_net_num_inputs(p))]
        self._outputs = [decode(lib.crema_net_output_name(p, i)) for i in range(lib.crema_net_num_outputs(p))]

    # ---- lifetime ----

    def _live(self):
        if self._h is None:
            raise CremaError(3, "the net is closed", "INVALID")
        return self._h

    def close(self):
        """Frees the C net now, or, while numpy views of its blobs are still
        alive, as soon as the last of them goes (they keep it alive, so that
        they never point into freed memory). Further calls on the net raise."""
        self._h = None

    @property
    def closed(self):
        return self._h is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    # ---- structure ----

    @property
    def layer_names(self):
        return list(self._layer_names)

    @property
    def layer_types(self):
        return list(self._layer_types)

    @property
    def inputs(self):
        """Tops of the Input layers, in order."""
        return list(self._inputs)

    @property
    def outputs(self):
        """Blobs no layer consumes, in Caffe's order."""
        return list(self._outputs)

    @property
    def blob_names(self):
        return list(self._blob_names)

    @property
    def bottom_names(self):
        return OrderedDict((k, list(v)) for k, v in self._bottoms.items())

    @property
    def top_names(self):
        return OrderedDict((k, list(v)) for k, v in self._tops.items())

    @property
    def blobs(self):
        """Every blob by name, in Caffe's order: name -> Blob."""
        return _Blobs(self)

    @property
    def params(self):
        """Layers with parameter blobs, in net order: name -> [Blob, ...]."""
        return _Params(self)

    def _layer_index(self, layer, what):
        if isinstance(layer, int) and not isinstance(layer, bool):
            if not 0 <= layer < len(self._layer_names):
                raise IndexError("%s: layer index %d is out of range (the net has %d layers)"
                                 % (what, layer, len(self._layer_names)))
            return layer
        try:
            return self._layer_names.index(layer)
        except ValueError:
            raise KeyError("%s: the net has no layer %r" % (what, layer)) from None

    # ---- inputs ----

    def _set_shape(self, name, shape, data):
        shape = [int(d) for d in shape]
        arr = (ctypes.c_int * max(len(shape), 1))(*shape)
        check(lib.crema_net_set_input(self._live().ptr, encode(name), len(shape), arr,
                                      None if data is None else _fptr(data)))

    def set_input(self, name, value):
        """Copies a numpy array into blob `name` (normally an input), taking
        the array's shape; a new shape is propagated through the net."""
        a = _float_array(value, "input %s" % name)
        if name not in self._blob_names:
            raise KeyError("the net has no blob %r" % (name,))
        self._set_shape(name, a.shape, a)

    def set_input_arrays(self, data, labels, layer=None):
        """Feeds a MemoryData layer (the first one when layer is None): data
        is N x C x H x W (C, H, W as the layer declares them), labels N
        values; N must be a multiple of the layer's batch_size. Each forward
        takes the next batch, wrapping around. The arrays are copied."""
        if layer is None:
            feeders = [n for n, t in zip(self._layer_names, self._layer_types) if t in ("MemoryData", "CoSData")]
            if not feeders:
                raise CremaError(7, "the net has no MemoryData layer", "NOTFOUND")
            layer = feeders[0]
        i = self._layer_index(layer, "set_input_arrays")
        if self._layer_types[i] == "CoSData":
            return self.set_cos_data(layer, data, labels)
        d = _float_array(data, "MemoryData %s data" % layer)
        lab = _float_array(labels, "MemoryData %s labels" % layer).reshape(-1)
        if self._layer_types[i] != "MemoryData":
            raise CremaError(3, "layer %s is a %s layer, not MemoryData" % (layer, self._layer_types[i]), "INVALID")
        item = Blob(self, self._tops[layer][0]).shape[1:]
        if d.ndim < 1 or tuple(d.shape[1:]) != tuple(item):
            raise CremaError(4, "MemoryData layer %s takes N x %s data, not %s"
                             % (layer, " x ".join(map(str, item)), " x ".join(map(str, d.shape))), "SHAPE")
        n = d.shape[0]
        if lab.size != n:
            raise CremaError(4, "MemoryData layer %s: %d data items but %d labels" % (layer, n, lab.size), "SHAPE")
        check(lib.crema_net_set_memory_data(self._live().ptr, encode(layer), _fptr(d), _fptr(lab), n))

    def set_cos_data(self, layer, *columns):
        """Feeds a CoSData layer (CaffeOnSpark's DataFrame-fed data layer):
        one column per top, in the order of its cos_data_param.top, each
        with the same number N of samples (a multiple of batch_size).
        Numeric tops (STRING, INT, FLOAT, INT_ARRAY, FLOAT_ARRAY) take an
        array of N samples (converted to float32; strings are parsed as
        numbers, as CaffeOnSpark does). RAW_IMAGE takes N x C x H x W uint8
        (planar). ENCODED_IMAGE(_WITH_DIM) takes a sequence of N bytes
        objects (JPEG/PNG files), or a pair (buffer, lengths) of the files
        back to back. The data is copied."""
        i = self._layer_index(layer, "set_cos_data")
        if self._layer_types[i] != "CoSData":
            raise CremaError(3, "layer %s is a %s layer, not CoSData" % (layer, self._layer_types[i]), "INVALID")
        ntop = len(self._tops[layer])
        if len(columns) != ntop:
            raise CremaError(3, "CoSData layer %s has %d tops: give %d columns, not %d"
                             % (layer, ntop, ntop, len(columns)), "INVALID")
        ptr = self._live().ptr
        for t, col in enumerate(columns):
            kind = lib.crema_net_cos_top_type(ptr, encode(layer), t)
            size = lib.crema_net_cos_top_size(ptr, encode(layer), t)
            lengths = None
            if kind in (6, 7):
                if isinstance(col, tuple) and len(col) == 2 and not isinstance(col[0], (bytes, bytearray)):
                    buf = np.ascontiguousarray(np.frombuffer(col[0], np.uint8))
                    lens = np.ascontiguousarray(col[1], dtype=np.uintp)
                else:
                    lens = np.fromiter((len(b) for b in col), dtype=np.uintp, count=len(col))
                    buf = np.frombuffer(b"".join(bytes(b) for b in col), np.uint8)
                n = lens.size
                lengths = lens.ctypes.data_as(ctypes.POINTER(ctypes.c_size_t))
                arr = buf if buf.size else np.zeros(1, np.uint8)
            elif kind == 5:
                arr = np.ascontiguousarray(col, dtype=np.uint8)
                n = arr.shape[0] if arr.ndim else 0
            else:
                a = np.asarray(col)
                if a.dtype.kind in "USO":
                    a = a.astype(np.float64)
                arr = np.ascontiguousarray(a, dtype=np.float32)
                n = arr.shape[0] if arr.ndim else 0
                if arr.size != n * size:
                    raise CremaError(4, "CoSData layer %s top %d takes %d values per sample: %d samples need %d, "
                                     "got %d" % (layer, t, size, n, n * size, arr.size), "SHAPE")
            check(lib.crema_net_set_cos_data(ptr, encode(layer), t, arr.ctypes.data_as(ctypes.c_void_p), lengths,
                                             int(n)))

    def set_data_shard(self, layer, rank, size):
        """Makes Data layer `layer` read only its shard: records rank,
        rank + size, ... (before its first forward)."""
        check(lib.crema_net_set_data_shard(self._live().ptr, encode(layer), int(rank), int(size)))

    def set_input_images(self, layer, images, labels, channels=0, height=0, width=0):
        """Feeds a MemoryData layer images as CaffeOnSpark's image sources
        do, with the layer's transform_param applied in C: `images` is
        N x C x H x W uint8 (planar), or a sequence of N encoded files
        (JPEG/PNG bytes), or a pair (buffer, lengths) of files back to back
        (channels 1 decodes gray, 3 colour; height, width > 0 resize)."""
        lab = _float_array(labels, "MemoryData %s labels" % layer).reshape(-1)
        lengths = None
        if isinstance(images, np.ndarray):
            arr = np.ascontiguousarray(images, dtype=np.uint8)
            if arr.ndim != 4:
                raise CremaError(4, "raw images must be N x C x H x W, not %s" % (arr.shape,), "SHAPE")
            n, channels, height, width = arr.shape
        else:
            if isinstance(images, tuple) and len(images) == 2 and not isinstance(images[0], (bytes, bytearray)):
                arr = np.ascontiguousarray(np.frombuffer(images[0], np.uint8))
                lens = np.ascontiguousarray(images[1], dtype=np.uintp)
            else:
                lens = np.fromiter((len(b) for b in images), dtype=np.uintp, count=len(images))
                arr = np.frombuffer(b"".join(bytes(b) for b in images), np.uint8)
            n = lens.size
            lengths = lens.ctypes.data_as(ctypes.POINTER(ctypes.c_size_t))
        if lab.size != n:
            raise CremaError(4, "MemoryData layer %s: %d images but %d labels" % (layer, n, lab.size), "SHAPE")
        check(lib.crema_net_set_memory_images(self._live().ptr, encode(layer), arr.ctypes.data_as(ctypes.c_void_p),
                                              lengths, int(n), int(channels), int(height), int(width), _fptr(lab)))

    # ---- running ----

    def forward(self, blobs=None, start=None, end=None, **inputs):
        """Sets the given inputs (name=array; a new shape reshapes the net),
        runs layers start..end (names or indices; default all) and returns
        copies of the outputs (the tops of `end` when end is given) and of
        the blobs named in `blobs`, as a dict of numpy arrays."""
        for name, value in inputs.items():
            self.set_input(name, value)
        h = self._live()
        loss = ctypes.c_float()
        if start is None and end is None:
            check(lib.crema_net_forward(h.ptr, ctypes.byref(loss)))
            names = list(self._outputs)
        else:
            s = 0 if start is None else self._layer_index(start, "forward start")
            e = len(self._layer_names) - 1 if end is None else self._layer_index(end, "forward end")
            check(lib.crema_net_forward_from_to(h.ptr, s, e, ctypes.byref(loss)))
            names = list(self._tops[self._layer_names[e]]) if end is not None else list(self._outputs)
        self.loss = float(loss.value)
        for b in blobs or ():
            if b not in names:
                names.append(b)
        return OrderedDict((n, self.blobs[n].data.copy()) for n in names)

    def backward(self, diffs=None, start=None, end=None, **top_diffs):
        """Sets the diffs of the given outputs (name=array), runs backward
        from layer start down to end (default: all) and returns copies of
        the diffs of the inputs (the bottoms of `end` when end is given) and
        of the blobs named in `diffs`. Parameter diffs accumulate until
        clear_param_diffs()."""
        for name, value in top_diffs.items():
            if name not in self._blob_names:
                raise KeyError("the net has no blob %r" % (name,))
            self.blobs[name].diff = value
        h = self._live()
        if start is None and end is None:
            check(lib.crema_net_backward(h.ptr))
            names = list(self._inputs)
        else:
            s = len(self._layer_names) - 1 if start is None else self._layer_index(start, "backward start")
            e = 0 if end is None else self._layer_index(end, "backward end")
            check(lib.crema_net_backward_from_to(h.ptr, s, e))
            names = list(self._bottoms[self._layer_names[e]]) if end is not None else list(self._inputs)
        for b in diffs or ():
            if b not in names:
                names.append(b)
        return OrderedDict((n, self.blobs[n].diff.copy()) for n in names)

    def clear_param_diffs(self):
        check(lib.crema_net_clear_param_diffs(self._live().ptr))

    # ---- weights ----

    def load_weights(self, path):
        """Loads a .caffemodel (or .caffemodel.h5) by layer name."""
        check(lib.crema_net_load_weights(self._live().ptr, _c_path(path, "weights")))

    copy_from = load_weights  # pycaffe's name

    def save(self, path):
        """Writes the weights as a binary .caffemodel (atomically)."""
        check(lib.crema_net_save_weights(self._live().ptr, _c_path(path, "output")))

    # ---- export ----

    def export_onnx(self, path, opset=None, fixed_batch=False):
        """Writes the net as it is now (its input shapes and weights) as an
        ONNX model; see crema.onnx_export.export_onnx."""
        from .onnx_export import export_onnx
        export_onnx(self, path, opset=opset, fixed_batch=fixed_batch)

    def __repr__(self):
        if self._h is None:
            return "<crema.Net (closed)>"
        return "<crema.Net %s, %d layers, inputs %s, outputs %s>" % (
            self.phase, len(self._layer_names), self._inputs, self._outputs)
