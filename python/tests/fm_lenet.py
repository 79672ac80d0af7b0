"""What the Spark tests of both front ends share (python/tests/test_spark.py,
tests/jvm/test_jvm.py): Fashion-MNIST's IDX files, CaffeOnSpark's LeNet with
a MemoryData or CoSData source, and a tally of checks."""
import gzip

import numpy as np

FM = "/usr/share/datasets/fashion-mnist"


class Tally:
    """ok(cond, what, detail): prints one line a check and counts them."""

    def __init__(self):
        self.fails = 0
        self.passes = 0

    def __call__(self, cond, what, detail=""):
        if cond:
            self.passes += 1
        else:
            self.fails += 1
        print("%s %s%s" % ("ok  " if cond else "FAIL", what, (" (%s)" % detail) if detail else ""), flush=True)


def idx(path):
    with gzip.open(path) as f:
        b = f.read()
    nd = b[3]
    dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(b, np.uint8, offset=4 + 4 * nd).reshape(dims)


LAYERS = """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 20 kernel_size: 5 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2" param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 50 kernel_size: 5 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1" param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 500 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy" include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""


def memory_layer(phase, cls, source, batch):
    return ('layer { name: "data" type: "MemoryData" top: "data" top: "label" include { phase: %s }\n'
            '  source_class: "%s"\n'
            '  memory_data_param { source: "%s" batch_size: %d channels: 1 height: 28 width: 28 }\n'
            '  transform_param { scale: 0.00390625 } }\n' % (phase, cls, source, batch))


def cos_layer(phase, source, batch, source_class=None):
    cls = '  source_class: "%s"\n' % source_class if source_class else ""
    return ('layer { name: "data" type: "CoSData" top: "data" top: "label" include { phase: %s }\n' % phase + cls +
            '  cos_data_param { source: "%s" batch_size: %d\n'
            '    top { name: "data" type: RAW_IMAGE channels: 1 height: 28 width: 28 sample_num_axes: 3\n'
            '          transform_param { scale: 0.00390625 } }\n'
            '    top { name: "label" type: INT channels: 1 } } }\n' % (source, batch))
