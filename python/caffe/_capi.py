"""ctypes declarations of the calls of include/crema.h that pycaffe's
interface uses beyond crema's own (crema._capi declares those), on the same
loaded libcrema."""
import ctypes
from ctypes import CFUNCTYPE, POINTER, Structure, c_char_p, c_float, c_int, c_size_t, c_uint64, c_void_p

from crema._capi import Blob as CBlob
from crema._capi import CremaError, errmsg, lib


class CaffeError(CremaError, RuntimeError):
    """A failure reported by libcrema; a RuntimeError, as the errors
    pycaffe's C++ raised."""


_net_p = c_void_p
_layer_p = c_void_p

# The callbacks of crema_layer_callbacks (crema.h).
CREATE = CFUNCTYPE(c_int, c_void_p, _layer_p, POINTER(c_void_p))
VERB = CFUNCTYPE(c_int, c_void_p, _layer_p)
BACKWARD = CFUNCTYPE(c_int, c_void_p, _layer_p, POINTER(c_int))
DESTROY = CFUNCTYPE(None, c_void_p)


class LayerCallbacks(Structure):
    _fields_ = [("create", CREATE), ("setup", VERB), ("reshape", VERB), ("forward", VERB),
                ("backward", BACKWARD), ("destroy", DESTROY)]


BOTTOM, TOP, PARAM = 0, 1, 2

_SIGNATURES = {
    "crema_net_open_state": (c_int, [c_char_p, c_char_p, c_int, c_int, POINTER(c_char_p), c_int,
                                     POINTER(_net_p)]),
    "crema_net_reshape_blob": (c_int, [_net_p, c_char_p, c_int, POINTER(c_int)]),
    "crema_net_reshape": (c_int, [_net_p]),
    "crema_net_share_with": (c_int, [_net_p, _net_p]),
    "crema_net_save_hdf5": (c_int, [_net_p, c_char_p, c_int]),
    "crema_net_load_hdf5": (c_int, [_net_p, c_char_p]),
    "crema_net_blob_loss_weight": (c_float, [_net_p, c_int]),
    "crema_set_random_seed": (None, [c_uint64]),
    "crema_layer_type_count": (c_int, []),
    "crema_layer_type_name": (c_char_p, [c_int]),
    "crema_solver_apply_update": (c_int, [c_void_p]),
    "crema_solver_open_type": (c_int, [c_char_p, c_char_p, c_int, POINTER(c_void_p)]),
    "crema_register_layer": (c_int, [c_char_p, POINTER(LayerCallbacks), c_void_p]),
    "crema_layer_count": (c_int, [_layer_p, c_int]),
    "crema_layer_blob": (c_int, [_layer_p, c_int, c_int, POINTER(CBlob)]),
    "crema_layer_reshape": (c_int, [_layer_p, c_int, c_int, c_int, POINTER(c_int)]),
    "crema_layer_add_param": (c_int, [_layer_p, c_int, POINTER(c_int)]),
    "crema_layer_param": (c_int, [_layer_p, POINTER(c_void_p), POINTER(c_size_t)]),
    "crema_layer_fail": (c_int, [_layer_p, c_int, c_char_p]),
    "crema_net_layer_state": (c_void_p, [_net_p, c_int]),
}

for _name, (_res, _args) in _SIGNATURES.items():
    _f = getattr(lib, _name)
    _f.restype = _res
    _f.argtypes = _args


def check(rc):
    """Raises CaffeError for a non-zero crema_status (calls that run no
    Python layer; _caffe._check for those that may)."""
    if rc:
        name = lib.crema_status_name(rc)
        raise CaffeError(rc, errmsg() or "libcrema failed", name.decode() if name else None)


def int_array(shape):
    """A shape for C: (c_int array, number of axes)."""
    dims = [int(d) for d in shape]
    return (ctypes.c_int * max(len(dims), 1))(*dims), len(dims)
