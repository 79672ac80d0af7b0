"""What the pycaffe tests share: temporary prototxts, the golden data
(../shared/golden, or CREMA_SHARED) read with caffe_pb2, comparisons."""
import os
import tempfile

import numpy as np

import caffe

SHARED = os.environ.get("CREMA_SHARED") or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                        "..", "..", "..", "..", "shared")
GOLDEN = os.path.join(SHARED, "golden")


def temp_file(text, suffix=".prototxt"):
    """A file holding text; the caller removes it."""
    with tempfile.NamedTemporaryFile(mode="w+", suffix=suffix, delete=False) as f:
        f.write(text)
        return f.name


def read_golden(path):
    """{entry name: [(data, diff or None), ...]} of a golden .caffemodel,
    read with caffe_pb2 and caffe.io (as Caffe's own files)."""
    with open(path, "rb") as f:
        net = caffe.proto.caffe_pb2.NetParameter.FromString(f.read())
    out = {}
    for layer in net.layer:
        out[layer.name] = [(caffe.io.blobproto_to_array(b),
                            caffe.io.blobproto_to_array(b, return_diff=True) if len(b.diff) else None)
                           for b in layer.blobs]
    return out


def max_rel(got, want):
    """max |got - want| over the largest |want|."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = max(float(np.abs(want).max()), 1e-30) if want.size else 1.0
    return float(np.abs(got - want).max()) / scale if want.size else 0.0


def simple_net_file(num_output):
    """The net of pycaffe's test_net: DummyData, Convolution, InnerProduct,
    SoftmaxWithLoss, with backward forced."""
    return temp_file("""name: 'testnet' force_backward: true
    layer { type: 'DummyData' name: 'data' top: 'data' top: 'label'
      dummy_data_param { num: 5 channels: 2 height: 3 width: 4
        num: 5 channels: 1 height: 1 width: 1
        data_filler { type: 'gaussian' std: 1 }
        data_filler { type: 'constant' } } }
    layer { type: 'Convolution' name: 'conv' bottom: 'data' top: 'conv'
      convolution_param { num_output: 11 kernel_size: 2 pad: 3
        weight_filler { type: 'gaussian' std: 1 }
        bias_filler { type: 'constant' value: 2 } }
      param { decay_mult: 1 } param { decay_mult: 0 } }
    layer { type: 'InnerProduct' name: 'ip' bottom: 'conv' top: 'ip_blob'
      inner_product_param { num_output: %d
        weight_filler { type: 'gaussian' std: 2.5 }
        bias_filler { type: 'constant' value: -3 } } }
    layer { type: 'SoftmaxWithLoss' name: 'loss' bottom: 'ip_blob' bottom: 'label' top: 'loss' }
    """ % num_output)
