"""ctypes declarations of include/crema.h, and the loading of libcrema.so.

The library is the one shipped inside the package (crema/_lib/libcrema.so,
found relative to this file), unless CREMA_LIBRARY names another one (for
working on crema itself without reinstalling)."""
import ctypes
import os
from ctypes import POINTER, c_char_p, c_float, c_int, c_long, c_size_t, c_void_p

_HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGED_LIBRARY = os.path.join(_HERE, "_lib", "libcrema.so")

MAX_AXES = 32


class CremaError(Exception):
    """A failure reported by libcrema: `status` is the crema_status code,
    `status_name` its name, and the message is crema_errmsg()'s text."""

    def __init__(self, status, message, status_name=None):
        super().__init__(message)
        self.status = status
        self.status_name = status_name

    def __str__(self):
        msg = self.args[0] if self.args else ""
        if self.status_name:
            return "%s (%s)" % (msg, self.status_name)
        return msg


class Blob(ctypes.Structure):
    _fields_ = [
        ("num_axes", c_int),
        ("shape", c_int * MAX_AXES),
        ("count", c_size_t),
        ("data", POINTER(c_float)),
        ("diff", POINTER(c_float)),
    ]


def _library_path():
    env = os.environ.get("CREMA_LIBRARY")
    if env:
        return env
    if os.path.exists(PACKAGED_LIBRARY):
        return PACKAGED_LIBRARY
    raise ImportError(
        "crema: %s is missing; install the package with `pip install ./python` "
        "(it builds libcrema with CMake), or set CREMA_LIBRARY to a libcrema.so" % PACKAGED_LIBRARY)


LIBRARY_PATH = _library_path()
lib = ctypes.CDLL(LIBRARY_PATH)

_net_p = c_void_p
_weights_p = c_void_p
_int_p = POINTER(c_int)
_float_p = POINTER(c_float)

# name: (restype, argtypes); every function returning c_int without "num"
# in its name is a crema_status.
_SIGNATURES = {
    "crema_errmsg": (c_char_p, []),
    "crema_status_name": (c_char_p, [c_int]),
    "crema_version": (c_char_p, []),
    "crema_set_mode": (c_int, [c_int]),
    "crema_get_mode": (c_int, []),
    "crema_set_device": (c_int, [c_int]),
    "crema_get_device": (c_int, []),
    "crema_gpu_count": (c_int, []),
    "crema_net_open": (c_int, [c_char_p, c_char_p, c_int, POINTER(_net_p)]),
    "crema_net_free": (None, [_net_p]),
    "crema_net_load_weights": (c_int, [_net_p, c_char_p]),
    "crema_net_save_weights": (c_int, [_net_p, c_char_p]),
    "crema_net_blob": (c_int, [_net_p, c_char_p, POINTER(Blob)]),
    "crema_net_param": (c_int, [_net_p, c_char_p, c_int, POINTER(Blob)]),
    "crema_net_set_input": (c_int, [_net_p, c_char_p, c_int, _int_p, _float_p]),
    "crema_net_get_blob": (c_int, [_net_p, c_char_p, c_int, _float_p, c_size_t]),
    "crema_net_set_memory_data": (c_int, [_net_p, c_char_p, _float_p, _float_p, c_int]),
    "crema_net_forward": (c_int, [_net_p, _float_p]),
    "crema_net_forward_from_to": (c_int, [_net_p, c_int, c_int, _float_p]),
    "crema_net_backward": (c_int, [_net_p]),
    "crema_net_backward_from_to": (c_int, [_net_p, c_int, c_int]),
    "crema_net_clear_param_diffs": (c_int, [_net_p]),
    "crema_net_num_layers": (c_int, [_net_p]),
    "crema_net_layer_name": (c_char_p, [_net_p, c_int]),
    "crema_net_layer_type": (c_char_p, [_net_p, c_int]),
    "crema_net_num_inputs": (c_int, [_net_p]),
    "crema_net_input_name": (c_char_p, [_net_p, c_int]),
    "crema_net_num_outputs": (c_int, [_net_p]),
    "crema_net_output_name": (c_char_p, [_net_p, c_int]),
    "crema_net_layer_num_params": (c_int, [_net_p, c_int]),
    "crema_net_layer_num_bottoms": (c_int, [_net_p, c_int]),
    "crema_net_layer_bottom_name": (c_char_p, [_net_p, c_int, c_int]),
    "crema_net_layer_num_tops": (c_int, [_net_p, c_int]),
    "crema_net_layer_top_name": (c_char_p, [_net_p, c_int, c_int]),
    "crema_net_num_blobs": (c_int, [_net_p]),
    "crema_net_blob_name": (c_char_p, [_net_p, c_int]),
    "crema_solver_open": (c_int, [c_char_p, c_int, POINTER(c_void_p)]),
    "crema_solver_free": (None, [c_void_p]),
    "crema_solver_step": (c_int, [c_void_p, c_int]),
    "crema_solver_solve": (c_int, [c_void_p, c_char_p]),
    "crema_solver_snapshot": (c_int, [c_void_p]),
    "crema_solver_restore": (c_int, [c_void_p, c_char_p]),
    "crema_solver_test_all": (c_int, [c_void_p]),
    "crema_solver_iter": (c_int, [c_void_p]),
    "crema_solver_net": (_net_p, [c_void_p]),
    "crema_solver_num_test_nets": (c_int, [c_void_p]),
    "crema_solver_test_net": (_net_p, [c_void_p, c_int]),
    "crema_net_set_cos_data": (c_int, [_net_p, c_char_p, c_int, c_void_p, POINTER(c_size_t), c_int]),
    "crema_net_cos_top_type": (c_int, [_net_p, c_char_p, c_int]),
    "crema_net_cos_top_size": (c_long, [_net_p, c_char_p, c_int]),
    "crema_net_set_memory_images": (c_int, [_net_p, c_char_p, c_void_p, POINTER(c_size_t), c_int, c_int, c_int,
                                            c_int, _float_p]),
    "crema_net_set_data_shard": (c_int, [_net_p, c_char_p, c_int, c_int]),
    "crema_db_count": (c_int, [c_char_p, c_char_p, POINTER(c_size_t)]),
    "crema_db_keys": (c_int, [c_char_p, c_char_p, c_int, c_int, POINTER(c_void_p), POINTER(c_void_p),
                              POINTER(c_size_t)]),
    "crema_dist_open": (c_int, [c_int, c_int, c_char_p, c_char_p, c_int, POINTER(c_void_p)]),
    "crema_dist_free": (None, [c_void_p]),
    "crema_dist_rank": (c_int, [c_void_p]),
    "crema_dist_size": (c_int, [c_void_p]),
    "crema_dist_allreduce": (c_int, [c_void_p, _float_p, c_size_t]),
    "crema_dist_broadcast": (c_int, [c_void_p, c_void_p, c_size_t, c_int]),
    "crema_dist_barrier": (c_int, [c_void_p]),
    "crema_solver_set_dist": (c_int, [c_void_p, c_void_p]),
    "crema_proto_parse": (c_int, [c_char_p, c_char_p, c_size_t, c_char_p, POINTER(c_void_p)]),
    "crema_proto_read": (c_int, [c_char_p, c_char_p, POINTER(c_void_p)]),
    "crema_proto_free": (None, [c_void_p]),
    "crema_proto_type": (c_char_p, [c_void_p]),
    "crema_proto_print": (c_int, [c_void_p, POINTER(c_void_p), POINTER(c_size_t)]),
    "crema_free": (None, [c_void_p]),
    "crema_proto_merge": (c_int, [c_void_p, c_char_p, c_size_t]),
    "crema_proto_get": (c_int, [c_void_p, c_char_p, POINTER(c_void_p), POINTER(c_size_t)]),
    "crema_proto_count": (c_int, [c_void_p, c_char_p, POINTER(c_size_t)]),
    "crema_proto_set": (c_int, [c_void_p, c_char_p, c_char_p]),
    "crema_proto_add": (c_int, [c_void_p, c_char_p, c_char_p]),
    "crema_proto_clear": (c_int, [c_void_p, c_char_p]),
    "crema_proto_field": (c_int, [c_void_p, c_char_p, POINTER(c_char_p), POINTER(c_int)]),
    "crema_proto_upgrade": (c_int, [c_void_p, POINTER(c_int)]),
    "crema_proto_filter_net": (c_int, [c_void_p, c_void_p]),
    "crema_weights_open": (c_int, [c_char_p, POINTER(_weights_p)]),
    "crema_weights_free": (None, [_weights_p]),
    "crema_weights_num_layers": (c_int, [_weights_p]),
    "crema_weights_layer_name": (c_char_p, [_weights_p, c_int]),
    "crema_weights_num_blobs": (c_int, [_weights_p, c_int]),
    "crema_weights_blob": (c_int, [_weights_p, c_int, c_int, POINTER(Blob)]),
    "crema_net_export_onnx": (c_int, [_net_p, c_char_p, c_int, ctypes.c_uint]),
}

for _name, (_res, _args) in _SIGNATURES.items():
    _f = getattr(lib, _name)
    _f.restype = _res
    _f.argtypes = _args


def errmsg():
    return lib.crema_errmsg().decode("utf-8", "replace")


def check(status):
    """Raises CremaError for a non-zero crema_status."""
    if status != 0:
        name = lib.crema_status_name(status)
        raise CremaError(status, errmsg() or "libcrema failed", name.decode() if name else None)


def encode(s):
    """A name (blob, layer) for C."""
    return s if isinstance(s, bytes) else str(s).encode("utf-8")


def encode_path(p, what="file"):
    """A file path (str, bytes or os.PathLike) for C, refused when it holds a
    NUL byte: C would read it only up to the NUL and open another file than
    the one named."""
    b = os.fsencode(p)
    if b"\0" in b:
        raise ValueError("crema: %s path %r holds a NUL byte" % (what, p))
    return b


def decode(b):
    return None if b is None else b.decode("utf-8", "replace")
