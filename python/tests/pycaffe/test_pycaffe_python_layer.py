"""Python layers (type "Python") as pycaffe's test_python_layer.py and
test_python_layer_with_param_str.py exercise them, checked against the same
layers written in C, against BVLC Caffe's own run of a Python layer
(golden/layers/python), and trained."""
import os
import shutil
import sys
import tempfile
import unittest

import numpy as np

import caffe
from pycaffe_testing import GOLDEN, max_rel, read_golden, temp_file

MODULE = 'test_pycaffe_python_layer'


class SimpleLayer(caffe.Layer):
    """Multiplies by ten."""

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = 10 * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = 10 * top[0].diff


class ExceptionLayer(caffe.Layer):
    def setup(self, bottom, top):
        raise RuntimeError('setup refused')


class ForwardErrorLayer(SimpleLayer):
    def forward(self, bottom, top):
        raise ValueError('forward refused: %d' % bottom[0].count)


class ParameterLayer(caffe.Layer):
    """One learnable blob; backward sets its diff to 1."""

    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[0] = 0

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[0] = 1


class PhaseLayer(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape()

    def forward(self, bottom, top):
        top[0].data[()] = self.phase


class SimpleParamLayer(caffe.Layer):
    """Multiplies by the number in param_str."""

    def setup(self, bottom, top):
        try:
            self.value = float(self.param_str)
        except ValueError:
            raise ValueError("Parameter string must be a legible float")

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.value * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = self.value * top[0].diff


class BlobLayer(caffe.Layer):
    """Caffe's Parameter layer in Python: a learnable blob of the shape in
    param_str, given as the top; its gradient is the top's diff."""

    def setup(self, bottom, top):
        self.blobs.add_blob(*[int(d) for d in self.param_str.split()])

    def reshape(self, bottom, top):
        top[0].reshape(*self.blobs[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.blobs[0].data

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[...] += top[0].diff


class InnerProductLayer(caffe.Layer):
    """y = x W^T + b, with W (outputs x inputs) and b learnable."""

    def setup(self, bottom, top):
        n_out = int(self.param_str)
        self.blobs.add_blob(n_out, bottom[0].count // bottom[0].shape[0])
        self.blobs.add_blob(n_out)

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape[0], self.blobs[0].shape[0])

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(bottom[0].shape[0], -1)
        top[0].data[...] = x.dot(self.blobs[0].data.T) + self.blobs[1].data

    def backward(self, top, propagate_down, bottom):
        x = bottom[0].data.reshape(bottom[0].shape[0], -1)
        dy = top[0].diff
        self.blobs[0].diff[...] += dy.T.dot(x)
        self.blobs[1].diff[...] += dy.sum(0)
        if propagate_down[0]:
            bottom[0].diff[...] = dy.dot(self.blobs[0].data).reshape(bottom[0].shape)


def python_net_file():
    return temp_file("""name: 'pythonnet' force_backward: true
        input: 'data' input_shape { dim: 10 dim: 9 dim: 8 }
        layer { type: 'Python' name: 'one' bottom: 'data' top: 'one'
          python_param { module: '%(m)s' layer: 'SimpleLayer' } }
        layer { type: 'Python' name: 'two' bottom: 'one' top: 'two'
          python_param { module: '%(m)s' layer: 'SimpleLayer' } }
        layer { type: 'Python' name: 'three' bottom: 'two' top: 'three'
          python_param { module: '%(m)s' layer: 'SimpleLayer' } }""" % {'m': MODULE})


def one_layer_net_file(cls, extra=''):
    return temp_file("""name: 'pythonnet' force_backward: true
        input: 'data' input_shape { dim: 10 dim: 9 dim: 8 }
        layer { type: 'Python' name: 'layer' bottom: 'data' top: 'top'
          python_param { module: '%s' layer: '%s' %s } }""" % (MODULE, cls, extra))


class TestPythonLayer(unittest.TestCase):
    def setUp(self):
        net_file = python_net_file()
        self.net = caffe.Net(net_file, caffe.TRAIN)
        os.remove(net_file)

    def test_listed(self):
        self.assertIn('Python', caffe.layer_type_list())

    def test_forward(self):
        x = 8
        self.net.blobs['data'].data[...] = x
        self.net.forward()
        for y in self.net.blobs['three'].data.flat:
            self.assertEqual(y, 10 ** 3 * x)

    def test_backward(self):
        x = 7
        self.net.blobs['three'].diff[...] = x
        self.net.backward()
        for y in self.net.blobs['data'].diff.flat:
            self.assertEqual(y, 10 ** 3 * x)

    def test_reshape(self):
        s = 4
        self.net.blobs['data'].reshape(s, s, s, s)
        self.net.forward()
        for blob in self.net.blobs.values():
            for d in blob.data.shape:
                self.assertEqual(s, d)

    def test_layers_are_the_objects(self):
        layer = self.net.layer_dict['two']
        self.assertIsInstance(layer, SimpleLayer)
        self.assertEqual(layer.type, 'Python')
        self.assertEqual(len(layer.blobs), 0)

    def test_exception(self):
        net_file = one_layer_net_file('ExceptionLayer')
        try:
            with self.assertRaisesRegex(RuntimeError, 'setup refused'):
                caffe.Net(net_file, caffe.TEST)
        finally:
            os.remove(net_file)

    def test_exception_in_forward(self):
        net_file = one_layer_net_file('ForwardErrorLayer')
        try:
            net = caffe.Net(net_file, caffe.TEST)
        finally:
            os.remove(net_file)
        with self.assertRaisesRegex(ValueError, 'forward refused: 720'):
            net.forward()
        # the net still works after the error
        net.layer_dict['layer'].forward = lambda bottom, top: None
        net.forward()

    def test_missing_module_or_class(self):
        for extra, exc in (("", AttributeError), ):
            net_file = one_layer_net_file('NoSuchLayer', extra)
            try:
                with self.assertRaises(exc):
                    caffe.Net(net_file, caffe.TEST)
            finally:
                os.remove(net_file)
        net_file = temp_file("""input: 'data' input_shape { dim: 1 }
            layer { type: 'Python' name: 'p' bottom: 'data' top: 't'
              python_param { module: 'no_such_module_anywhere' layer: 'L' } }""")
        try:
            with self.assertRaises(ImportError):
                caffe.Net(net_file, caffe.TEST)
        finally:
            os.remove(net_file)

    def test_parameter(self):
        net_file = one_layer_net_file('ParameterLayer')
        try:
            net = caffe.Net(net_file, caffe.TRAIN)
            net.forward()
            net.backward()
            layer = net.layers[list(net._layer_names).index('layer')]
            self.assertEqual(layer.blobs[0].data[0], 0)
            self.assertEqual(layer.blobs[0].diff[0], 1)
            layer.blobs[0].data[0] += layer.blobs[0].diff[0]
            self.assertEqual(layer.blobs[0].data[0], 1)
            self.assertEqual(list(net.params), ['layer'])

            # saving and loading
            h, caffemodel_file = tempfile.mkstemp()
            os.close(h)
            net.save(caffemodel_file)
            layer.blobs[0].data[0] = -1
            self.assertEqual(layer.blobs[0].data[0], -1)
            net.copy_from(caffemodel_file)
            self.assertEqual(layer.blobs[0].data[0], 1)
            os.remove(caffemodel_file)

            # weight sharing
            net2 = caffe.Net(net_file, caffe.TRAIN)
            net2.share_with(net)
            layer2 = net2.layers[list(net2._layer_names).index('layer')]
            self.assertEqual(layer2.blobs[0].data[0], 1)
        finally:
            os.remove(net_file)

    def test_layer_outlives_net(self):
        net_file = one_layer_net_file('ParameterLayer')
        try:
            net = caffe.Net(net_file, caffe.TRAIN)
        finally:
            os.remove(net_file)
        layer = net.layer_dict['layer']
        view = layer.blobs[0].data
        del net
        self.assertEqual(view[0], 0)       # the view keeps the net's memory
        del view
        with self.assertRaises(RuntimeError):
            layer.blobs[0].data

    def test_phase(self):
        net_file = temp_file("""name: 'pythonnet' force_backward: true
            layer { type: 'Python' name: 'layer' top: 'phase'
              python_param { module: '%s' layer: 'PhaseLayer' } }""" % MODULE)
        try:
            for phase in caffe.TRAIN, caffe.TEST:
                net = caffe.Net(net_file, phase)
                self.assertEqual(net.forward()['phase'], phase)
        finally:
            os.remove(net_file)


class TestLayerWithParam(unittest.TestCase):
    def setUp(self):
        net_file = temp_file("""name: 'pythonnet' force_backward: true
            input: 'data' input_shape { dim: 10 dim: 9 dim: 8 }
            layer { type: 'Python' name: 'mul10' bottom: 'data' top: 'mul10'
              python_param { module: '%(m)s' layer: 'SimpleParamLayer' param_str: '10' } }
            layer { type: 'Python' name: 'mul2' bottom: 'mul10' top: 'mul2'
              python_param { module: '%(m)s' layer: 'SimpleParamLayer' param_str: '2' } }""" % {'m': MODULE})
        self.net = caffe.Net(net_file, caffe.TRAIN)
        os.remove(net_file)

    def test_forward(self):
        x = 8
        self.net.blobs['data'].data[...] = x
        self.net.forward()
        for y in self.net.blobs['mul2'].data.flat:
            self.assertEqual(y, 2 * 10 * x)

    def test_backward(self):
        x = 7
        self.net.blobs['mul2'].diff[...] = x
        self.net.backward()
        for y in self.net.blobs['data'].diff.flat:
            self.assertEqual(y, 2 * 10 * x)


class TestAgainstC(unittest.TestCase):
    """A Python layer gives what the same layer written in C gives."""

    def twin(self, py_layer, c_layer, shape):
        """Forward and backward of one layer over an Input, Python and C."""
        nets = []
        for layer in (py_layer, c_layer):
            f = temp_file("name: 'twin' force_backward: true\n"
                          "layer { name: 'in' type: 'Input' top: 'x' input_param { shape { %s } } }\n%s"
                          % (" ".join("dim: %d" % d for d in shape), layer))
            try:
                nets.append(caffe.Net(f, caffe.TRAIN))
            finally:
                os.remove(f)
        rs = np.random.RandomState(7)
        x = rs.randn(*shape).astype(np.float32)
        for net in nets:
            for name, blobs in net.params.items():
                for j, b in enumerate(blobs):
                    b.data[...] = np.random.RandomState(11 + j).randn(*b.shape)
        outs = []
        for net in nets:
            net.blobs['x'].data[...] = x
            net.forward()
            # cleared first: C's Parameter layer shares its blob's diff with its top
            net.clear_param_diffs()
            dy = np.random.RandomState(8).randn(*net.blobs['y'].shape).astype(np.float32)
            net.blobs['y'].diff[...] = dy
            net.backward()
            outs.append((net.blobs['y'].data.copy(), net.blobs['x'].diff.copy(),
                         [b.diff.copy() for blobs in net.params.values() for b in blobs]))
        return outs

    def test_times_ten(self):
        (py_y, py_dx, _), (c_y, c_dx, _) = self.twin(
            "layer { name: 'l' type: 'Python' bottom: 'x' top: 'y' "
            "python_param { module: '%s' layer: 'SimpleLayer' } }" % MODULE,
            "layer { name: 'l' type: 'Power' bottom: 'x' top: 'y' power_param { scale: 10 } }", (4, 3, 5))
        np.testing.assert_array_equal(py_y, c_y)
        np.testing.assert_array_equal(py_dx, c_dx)

    def test_parameter(self):
        (py_y, _, py_dw), (c_y, _, c_dw) = self.twin(
            "layer { name: 'l' type: 'Python' top: 'y' "
            "python_param { module: '%s' layer: 'BlobLayer' param_str: '2 3 4' } }" % MODULE,
            "layer { name: 'l' type: 'Parameter' top: 'y' parameter_param { shape { dim: 2 dim: 3 dim: 4 } } }",
            (1,))
        np.testing.assert_array_equal(py_y, c_y)
        self.assertEqual(len(py_dw), 1)
        np.testing.assert_array_equal(py_dw[0], c_dw[0])

    def test_inner_product(self):
        (py_y, py_dx, py_dw), (c_y, c_dx, c_dw) = self.twin(
            "layer { name: 'l' type: 'Python' bottom: 'x' top: 'y' "
            "python_param { module: '%s' layer: 'InnerProductLayer' param_str: '5' } }" % MODULE,
            "layer { name: 'l' type: 'InnerProduct' bottom: 'x' top: 'y' inner_product_param { num_output: 5 } }",
            (4, 3, 2))
        self.assertLess(max_rel(py_y, c_y), 1e-5)
        self.assertLess(max_rel(py_dx, c_dx), 1e-5)
        for a, b in zip(py_dw, c_dw):
            self.assertLess(max_rel(a, b), 1e-5)


class TestTraining(unittest.TestCase):
    """A net with a Python layer trains: SGD on a Python InnerProduct gives
    the weights SGD gives the C InnerProduct."""

    NET = """name: 'train' force_backward: false
layer { name: 'data' type: 'DummyData' top: 'data' top: 'label'
  dummy_data_param { shape { dim: 8 dim: 6 } shape { dim: 8 }
    data_filler { type: 'gaussian' std: 1 } data_filler { type: 'constant' value: 1 } } }
%s
layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'label' top: 'loss' }
"""

    def test_trains_as_c(self):
        tmp = tempfile.mkdtemp()
        try:
            results = []
            layers = ("layer { name: 'ip' type: 'Python' bottom: 'data' top: 'ip' "
                      "python_param { module: '%s' layer: 'InnerProductLayer' param_str: '3' } }" % MODULE,
                      "layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip' "
                      "inner_product_param { num_output: 3 } }")
            for k, layer in enumerate(layers):
                net_path = os.path.join(tmp, 'net%d.prototxt' % k)
                with open(net_path, 'w') as f:
                    f.write(self.NET % layer)
                solver_path = os.path.join(tmp, 'solver%d.prototxt' % k)
                with open(solver_path, 'w') as f:
                    f.write("net: '%s' base_lr: 0.1 momentum: 0.9 weight_decay: 0.001 lr_policy: 'fixed' "
                            "max_iter: 20 display: 0 snapshot_after_train: false random_seed: 3 "
                            "solver_mode: CPU snapshot_prefix: '%s/s'\n" % (net_path, tmp))
                solver = caffe.SGDSolver(solver_path)
                rs = np.random.RandomState(5)
                w0 = rs.randn(3, 6).astype(np.float32) * 0.1
                solver.net.params['ip'][0].data[...] = w0
                solver.net.params['ip'][1].data[...] = 0
                losses = []
                for _ in range(5):
                    solver.step(1)
                    losses.append(float(solver.net.blobs['loss'].data))
                results.append(([b.data.copy() for b in solver.net.params['ip']], losses))
                self.assertEqual(solver.iter, 5)
            (py_w, py_loss), (c_w, c_loss) = results
            self.assertLess(py_loss[-1], py_loss[0])
            np.testing.assert_allclose(py_loss, c_loss, rtol=1e-5)
            for a, b in zip(py_w, c_w):
                self.assertLess(max_rel(a, b), 1e-5)
        finally:
            shutil.rmtree(tmp)


class TestGoldenPythonLayer(unittest.TestCase):
    """BVLC Caffe's own run of a Python layer (golden/layers/python),
    repeated with the same module through crema."""

    def test_golden(self):
        case = os.path.join(GOLDEN, 'layers', 'python')
        sys.path.insert(0, case)
        try:
            net = caffe.Net(os.path.join(case, 'net.prototxt'), caffe.TRAIN)
        finally:
            sys.path.remove(case)
        golden = read_golden(os.path.join(case, 'golden.caffemodel'))
        net.blobs['x'].data[...] = golden['blob/x'][0][0]
        net.forward()
        self.assertLess(max_rel(net.blobs['y'].data, golden['blob/y'][0][0]), 1e-5)
        net.blobs['y'].diff[...] = golden['blob/y'][0][1]
        net.backward()
        self.assertLess(max_rel(net.blobs['x'].diff, golden['blob/x'][0][1]), 1e-5)


if __name__ == '__main__':
    unittest.main()
