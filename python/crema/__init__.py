"""crema: Caffe-compatible deep learning in C, from Python.

A binding to libcrema (shipped in crema/_lib) through ctypes:

    import crema
    with crema.Net("deploy.prototxt", "model.caffemodel", phase="TEST") as net:
        out = net.forward(data=images)          # dict of numpy arrays (copies)
        probs = out["prob"]
        w = net.params["conv1"][0].data         # a view of the C memory

See crema.Net for what is a view and what is a copy.
"""
from ._capi import LIBRARY_PATH, CremaError, lib as _lib
from .net import TEST, TRAIN, Blob, Net
from .dist import Dist
from .solver import Solver
from .weights import BlobArrays, read_caffemodel

__version__ = "0.1.0"

__all__ = ["Net", "Blob", "Solver", "Dist", "CremaError", "TRAIN", "TEST", "read_caffemodel", "BlobArrays",
           "library_path", "version", "db_count"]


def library_path():
    """The libcrema.so this package loaded."""
    return LIBRARY_PATH


def db_count(path, backend="lmdb"):
    """The number of records of an LMDB or LevelDB database."""
    import ctypes
    from ._capi import check, encode_path
    n = ctypes.c_size_t()
    check(_lib.crema_db_count(encode_path(path), backend.encode(), ctypes.byref(n)))
    return n.value


def version():
    """libcrema's version string."""
    return _lib.crema_version().decode()
