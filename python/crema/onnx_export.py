"""ONNX export of a crema.Net: the writing is libcrema's own (C, through
protobuf-c), so neither this module nor the command line needs the `onnx`
package; reading the file back needs an ONNX reader (ONNX Runtime, ...)."""
from ._capi import check, encode_path, lib

# The opsets libcrema writes (include/crema.h CREMA_ONNX_OPSET_*).
OPSET_MIN = 13
OPSET_MAX = 21
OPSET_DEFAULT = 17

_FIXED_BATCH = 1


def export_onnx(net, path, opset=None, fixed_batch=False):
    """Writes `net` (a crema.Net, normally opened in the TEST phase) with its
    weights as an ONNX model at `path`, atomically. The inputs' shapes are
    the net's current ones (reshape an input first to change them); axis 0
    of every input is the symbolic batch "N" unless fixed_batch. A layer
    with no ONNX equivalent raises CremaError naming the layer and why."""
    if opset is None:
        opset = OPSET_DEFAULT
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise TypeError("opset must be an int, not %r" % (opset,))
    flags = _FIXED_BATCH if fixed_batch else 0
    check(lib.crema_net_export_onnx(net._live().ptr, encode_path(path), opset, flags))
