"""caffe: pycaffe's interface (BVLC Caffe's Python package) over crema.

    import caffe
    net = caffe.Net('deploy.prototxt', caffe.TEST, weights='model.caffemodel')
    net.blobs['data'].data[...] = images
    out = net.forward()

Nets, blobs, solvers, Python layers (caffe.Layer), caffe.io, NetSpec
(caffe.layers, caffe.params), Classifier, Detector and caffe.proto.caffe_pb2
(protobuf's classes, generated from crema's caffe.proto), computed by
libcrema, the same library as crema's own Python package."""
from .proto.caffe_pb2 import TEST, TRAIN  # noqa: F401
from ._caffe import (CaffeError, Layer, Timer, __version__, get_solver, init_log, layer_type_list,  # noqa: F401
                     log, set_device, set_mode_cpu, set_mode_gpu, set_random_seed)
from .pycaffe import (AdaDeltaSolver, AdaGradSolver, AdamSolver, Net, NesterovSolver, RMSPropSolver,  # noqa: F401
                      SGDSolver)
from ._caffe import Blob, Solver  # noqa: F401
from .classifier import Classifier  # noqa: F401
from .detector import Detector  # noqa: F401
from . import io  # noqa: F401
from .net_spec import NetSpec, layers, params, to_proto  # noqa: F401
