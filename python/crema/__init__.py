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
from . import onnx_export
from .onnx_export import export_onnx
from .solver import Solver
from .weights import BlobArrays, read_caffemodel
from .proto import Literal, Message

__version__ = "0.1.0"

__all__ = ["Net", "Blob", "Solver", "Dist", "CremaError", "TRAIN", "TEST", "read_caffemodel", "BlobArrays",
           "export_onnx", "onnx_export", "library_path", "version", "db_count", "db_keys", "Message", "Literal",
           "set_mode_cpu", "set_mode_gpu", "set_device", "gpu_count"]


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


def db_keys(path, backend="lmdb", rank=0, size=1):
    """The keys (bytes) of records rank, rank + size, ... of a database, in
    its order: the shard a Data layer reads after set_data_shard."""
    import ctypes
    from ._capi import check, encode_path
    keys, offs, n = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_size_t()
    check(_lib.crema_db_keys(encode_path(path), backend.encode(), rank, size, ctypes.byref(keys),
                             ctypes.byref(offs), ctypes.byref(n)))
    try:
        o = (ctypes.c_size_t * (n.value + 1)).from_address(offs.value)
        data = ctypes.string_at(keys.value, o[n.value]) if o[n.value] else b""
        return [data[o[i]:o[i + 1]] for i in range(n.value)]
    finally:
        _lib.crema_free(keys)
        _lib.crema_free(offs)


def version():
    """libcrema's version string."""
    return _lib.crema_version().decode()


def set_mode_cpu():
    """Nets and solvers opened from now on compute on the CPU (pycaffe's
    caffe.set_mode_cpu())."""
    from ._capi import check
    check(_lib.crema_set_mode(0))


def set_mode_gpu():
    """Nets and solvers opened from now on compute on the GPU chosen with
    set_device (default 0), as pycaffe's caffe.set_mode_gpu(). Raises
    CremaError at once, saying why, where no usable GPU is."""
    from ._capi import check
    check(_lib.crema_set_mode(1))


def set_device(gpu_id):
    """The GPU that set_mode_gpu() computes on (pycaffe's caffe.set_device)."""
    from ._capi import check
    check(_lib.crema_set_device(int(gpu_id)))


def gpu_count():
    """GPUs present (0 where there is no GPU, driver or CUDA plugin)."""
    return int(_lib.crema_gpu_count())
