"""Weights files read without a net: crema.read_caffemodel."""
import ctypes
from collections import OrderedDict, namedtuple

import numpy as np

from ._capi import Blob, check, decode, encode_path, lib

BlobArrays = namedtuple("BlobArrays", "data diff")
BlobArrays.__doc__ = "One blob of a weights file: data, and diff (None when the file has none)."


def _copy(ptr, shape, count):
    if not ptr:
        return None
    flat = np.ctypeslib.as_array(ptr, shape=(max(int(count), 1),))[: int(count)]
    return flat.reshape(shape).copy()


def read_caffemodel(path):
    """Reads a binary .caffemodel (any binary NetParameter) or an HDF5
    .caffemodel.h5 and returns {layer name: [BlobArrays(data, diff), ...]}
    in file order, as numpy copies. A name that repeats keeps its last
    entry, as loading the file into a net would leave it."""
    w = ctypes.c_void_p()
    check(lib.crema_weights_open(encode_path(path), ctypes.byref(w)))
    try:
        out = OrderedDict()
        for i in range(lib.crema_weights_num_layers(w)):
            name = decode(lib.crema_weights_layer_name(w, i))
            blobs = []
            for j in range(lib.crema_weights_num_blobs(w, i)):
                b = Blob()
                check(lib.crema_weights_blob(w, i, j, ctypes.byref(b)))
                shape = tuple(b.shape[: b.num_axes])
                blobs.append(BlobArrays(_copy(b.data, shape, b.count), _copy(b.diff, shape, b.count)))
            out[name] = blobs
        return out
    finally:
        lib.crema_weights_free(w)
