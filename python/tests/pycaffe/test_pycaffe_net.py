"""caffe.Net as pycaffe's test_net.py exercises it (blobs, params, layers,
forward and backward with start/end, names, saving and loading, levels and
stages), and the rest of Net's interface."""
import os
import tempfile
import unittest
from collections import OrderedDict

import numpy as np

import caffe
from pycaffe_testing import simple_net_file, temp_file


class TestNet(unittest.TestCase):
    def setUp(self):
        self.num_output = 13
        net_file = simple_net_file(self.num_output)
        self.net = caffe.Net(net_file, caffe.TRAIN)
        self.net.blobs['label'].data[...] = np.random.RandomState(3).randint(
            self.num_output, size=self.net.blobs['label'].data.shape)
        os.remove(net_file)

    def test_memory(self):
        """Blob arrays and Blobs held past the net's life stay readable."""
        params = sum(map(list, self.net.params.values()), [])
        blobs = list(self.net.blobs.values())
        arrays = [b.data for b in blobs]
        del self.net
        total = 0
        for p in params:
            total += p.data.sum() + p.diff.sum()
        for bl in blobs:
            total += bl.data.sum() + bl.diff.sum()
        for a in arrays:
            total += a.sum()
        self.assertTrue(np.isfinite(total))

    def test_layer_dict(self):
        layer_dict = self.net.layer_dict
        self.assertEqual(list(layer_dict.keys()), list(self.net._layer_names))
        for i, name in enumerate(self.net._layer_names):
            self.assertEqual(layer_dict[name].type, self.net.layers[i].type)
        self.assertEqual([lr.type for lr in self.net.layers], ['DummyData', 'Convolution', 'InnerProduct',
                                                                'SoftmaxWithLoss'])

    def test_forward_backward(self):
        out = self.net.forward()
        self.assertEqual(list(out), ['loss'])
        self.assertGreater(float(out['loss']), 0)
        diffs = self.net.backward()
        self.assertEqual(diffs, {})
        self.assertGreater(np.abs(self.net.params['conv'][0].diff).max(), 0)
        self.assertGreater(np.abs(self.net.blobs['data'].diff).max(), 0)

    def test_forward_start_end(self):
        conv_blob = self.net.blobs['conv']
        ip_blob = self.net.blobs['ip_blob']
        sample = np.random.RandomState(1).uniform(size=conv_blob.data.shape).astype(np.float32)
        conv_blob.data[:] = sample
        out = self.net.forward(start='ip', end='ip')
        self.assertIn('ip_blob', out)
        w, b = self.net.params['ip'][0].data, self.net.params['ip'][1].data
        manual = np.array([w.dot(sample[i].reshape(-1)) + b for i in range(sample.shape[0])])
        np.testing.assert_allclose(ip_blob.data, manual, rtol=1e-3, atol=1e-5)
        # the outputs returned are views of the net's blobs, as pycaffe's
        self.assertTrue(np.shares_memory(out['ip_blob'], ip_blob.data))

    def test_backward_start_end(self):
        conv_blob = self.net.blobs['conv']
        ip_blob = self.net.blobs['ip_blob']
        sample = np.random.RandomState(2).uniform(size=ip_blob.data.shape).astype(np.float32)
        ip_blob.diff[:] = sample
        out = self.net.backward(start='ip', end='ip')
        self.assertIn('conv', out)
        w = self.net.params['ip'][0].data
        manual = np.array([w.T.dot(sample[i].reshape(-1)) for i in range(conv_blob.data.shape[0])])
        np.testing.assert_allclose(conv_blob.diff, manual.reshape(conv_blob.data.shape), rtol=1e-3, atol=1e-5)

    def test_clear_param_diffs(self):
        self.net.forward()
        self.net.backward()
        diff = self.net.params["conv"][0].diff
        self.assertTrue(diff.max() > 0)
        self.net.clear_param_diffs()
        self.assertTrue((diff == 0).all())

    def test_inputs_outputs(self):
        self.assertEqual(self.net.inputs, [])
        self.assertEqual(self.net.outputs, ['loss'])

    def test_top_bottom_names(self):
        self.assertEqual(self.net.top_names, OrderedDict([('data', ['data', 'label']), ('conv', ['conv']),
                                                          ('ip', ['ip_blob']), ('loss', ['loss'])]))
        self.assertEqual(self.net.bottom_names, OrderedDict([('data', []), ('conv', ['data']), ('ip', ['conv']),
                                                             ('loss', ['ip_blob', 'label'])]))
        self.assertEqual(self.net._top_ids(0), [0, 1])
        self.assertEqual(self.net._bottom_ids(3), [3, 1])

    def test_blob_loss_weights(self):
        self.assertEqual(self.net.blob_loss_weights, OrderedDict([('data', 0.0), ('label', 0.0), ('conv', 0.0),
                                                                  ('ip_blob', 0.0), ('loss', 1.0)]))

    def _same_params(self, net2):
        for name in self.net.params:
            for i in range(len(self.net.params[name])):
                self.assertEqual(abs(self.net.params[name][i].data - net2.params[name][i].data).sum(), 0)

    def test_save_and_read(self):
        f = tempfile.NamedTemporaryFile(mode='w+', delete=False)
        f.close()
        self.net.save(f.name)
        net_file = simple_net_file(self.num_output)
        try:
            legacy = caffe.Net(net_file, f.name, caffe.TRAIN)  # the old form, with its warning
            net2 = caffe.Net(net_file, caffe.TRAIN, weights=f.name)
        finally:
            os.remove(net_file)
            os.remove(f.name)
        self._same_params(legacy)
        self._same_params(net2)

    def test_save_hdf5(self):
        f = tempfile.NamedTemporaryFile(mode='w+', delete=False)
        f.close()
        self.net.save_hdf5(f.name)  # no .h5 in the name: HDF5 all the same, as Caffe's
        net_file = simple_net_file(self.num_output)
        try:
            net2 = caffe.Net(net_file, caffe.TRAIN)
            net2.load_hdf5(f.name)
        finally:
            os.remove(net_file)
            os.remove(f.name)
        self._same_params(net2)

    def test_copy_from_and_share_with(self):
        net_file = simple_net_file(self.num_output)
        try:
            other = caffe.Net(net_file, caffe.TRAIN)
        finally:
            os.remove(net_file)
        other.params['ip'][0].data[...] = 0.25
        self.net.share_with(other)
        self.assertTrue((self.net.params['ip'][0].data == 0.25).all())
        other.params['ip'][0].data[0, 0] = 7
        self.assertEqual(self.net.params['ip'][0].data[0, 0], 7)

    def test_blob_interface(self):
        b = self.net.blobs['data']
        self.assertEqual(b.shape, (5, 2, 3, 4))
        self.assertEqual((b.num, b.channels, b.height, b.width, b.count), (5, 2, 3, 4, 120))
        b.data = np.ones(b.shape)
        self.assertTrue((b.data == 1).all())
        lab = self.net.blobs['label']
        self.assertEqual(lab.shape, (5, 1, 1, 1))

    def test_reshape(self):
        self.net.blobs['data'].reshape(2, 2, 3, 4)
        self.net.blobs['label'].reshape(2, 1, 1, 1)
        self.assertEqual(self.net.blobs['data'].data.shape, (2, 2, 3, 4))
        self.assertEqual(self.net.blobs['conv'].data.shape, (5, 11, 8, 9))  # not until reshape()
        self.net.reshape()
        self.assertEqual(self.net.blobs['conv'].data.shape, (2, 11, 8, 9))
        self.assertEqual(self.net.blobs['ip_blob'].data.shape, (2, 13))

    def test_callbacks(self):
        seen = []
        self.net.before_forward(lambda i: seen.append(('f', i)))
        self.net.after_backward(lambda i: seen.append(('b', i)))
        self.net.forward()
        self.net.backward()
        self.assertEqual(seen, [('f', 0), ('f', 1), ('f', 2), ('f', 3), ('b', 3), ('b', 2), ('b', 1), ('b', 0)])

    def test_random_seed(self):
        net_file = simple_net_file(self.num_output)
        try:
            caffe.set_random_seed(5)
            a = caffe.Net(net_file, caffe.TRAIN).params['ip'][0].data.copy()
            b = caffe.Net(net_file, caffe.TRAIN).params['ip'][0].data.copy()
            caffe.set_random_seed(6)
            c = caffe.Net(net_file, caffe.TRAIN).params['ip'][0].data.copy()
        finally:
            os.remove(net_file)
        np.testing.assert_array_equal(a, b)
        self.assertFalse(np.array_equal(a, c))

    def test_missing_file(self):
        with self.assertRaises(RuntimeError):
            caffe.Net('/nonexistent/net.prototxt', caffe.TEST)
        with self.assertRaises(ValueError):
            caffe.Net('/nonexistent/net.prototxt', 7)


class TestInputs(unittest.TestCase):
    """forward(**inputs), forward_all and set_input_arrays."""

    def setUp(self):
        self.f = temp_file("""name: 'in' input: 'data' input_shape { dim: 4 dim: 3 }
            layer { type: 'InnerProduct' name: 'ip' bottom: 'data' top: 'ip'
              inner_product_param { num_output: 2 weight_filler { type: 'gaussian' std: 1 } } }""")
        self.net = caffe.Net(self.f, caffe.TEST)

    def tearDown(self):
        os.remove(self.f)

    def test_forward_inputs(self):
        x = np.random.RandomState(0).randn(4, 3).astype(np.float32)
        out = self.net.forward(data=x)
        w = self.net.params['ip'][0].data
        np.testing.assert_allclose(out['ip'], x.dot(w.T), rtol=1e-5, atol=1e-6)
        with self.assertRaisesRegex(Exception, 'do not match net inputs'):
            self.net.forward(other=x)
        with self.assertRaisesRegex(Exception, 'not batch sized'):
            self.net.forward(data=x[:3])

    def test_forward_all(self):
        x = np.random.RandomState(1).randn(10, 3).astype(np.float32)
        out = self.net.forward_all(data=x)
        w = self.net.params['ip'][0].data
        self.assertEqual(out['ip'].shape, (10, 2))
        np.testing.assert_allclose(out['ip'], x.dot(w.T), rtol=1e-5, atol=1e-6)

    def test_forward_backward_all(self):
        x = np.random.RandomState(2).randn(6, 3).astype(np.float32)
        g = np.random.RandomState(3).randn(6, 2).astype(np.float32)
        outs, diffs = self.net.forward_backward_all(data=x, ip=g)
        w = self.net.params['ip'][0].data
        np.testing.assert_allclose(outs['ip'], x.dot(w.T), rtol=1e-5, atol=1e-6)
        self.assertEqual(diffs['data'].shape, (6, 3))

    def test_set_input_arrays(self):
        f = temp_file("""name: 'mem'
            layer { type: 'MemoryData' name: 'data' top: 'data' top: 'label'
              memory_data_param { batch_size: 2 channels: 1 height: 2 width: 2 } }
            layer { type: 'Flatten' name: 'flat' bottom: 'data' top: 'flat' }""")
        try:
            net = caffe.Net(f, caffe.TEST)
        finally:
            os.remove(f)
        data = np.arange(16, dtype=np.float32).reshape(4, 1, 2, 2)
        labels = np.array([5, 6, 7, 8], np.float32)
        net.set_input_arrays(data, labels)
        net.forward()
        np.testing.assert_array_equal(net.blobs['data'].data, data[:2])
        np.testing.assert_array_equal(net.blobs['label'].data.ravel(), [5, 6])
        net.forward()
        np.testing.assert_array_equal(net.blobs['label'].data.ravel(), [7, 8])
        with self.assertRaisesRegex(RuntimeError, 'multiple of batch size'):
            net.set_input_arrays(data[:3], labels[:3])
        with self.assertRaisesRegex(RuntimeError, 'float32'):
            net.set_input_arrays(data.astype(np.float64), labels)


class TestLevels(unittest.TestCase):
    TEST_NET = """
layer { name: "data" type: "DummyData" top: "data" dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } } }
layer { name: "NoLevel" type: "InnerProduct" bottom: "data" top: "NoLevel" inner_product_param { num_output: 1 } }
layer { name: "Level0Only" type: "InnerProduct" bottom: "data" top: "Level0Only"
  include { min_level: 0 max_level: 0 } inner_product_param { num_output: 1 } }
layer { name: "Level1Only" type: "InnerProduct" bottom: "data" top: "Level1Only"
  include { min_level: 1 max_level: 1 } inner_product_param { num_output: 1 } }
layer { name: "Level>=0" type: "InnerProduct" bottom: "data" top: "Level>=0"
  include { min_level: 0 } inner_product_param { num_output: 1 } }
layer { name: "Level>=1" type: "InnerProduct" bottom: "data" top: "Level>=1"
  include { min_level: 1 } inner_product_param { num_output: 1 } }
"""

    def setUp(self):
        self.f = temp_file(self.TEST_NET)

    def tearDown(self):
        os.remove(self.f)

    def check_net(self, net, blobs):
        self.assertEqual([b for b in net.blobs.keys() if 'data' not in b], blobs)

    def test_0(self):
        self.check_net(caffe.Net(self.f, caffe.TEST), ['NoLevel', 'Level0Only', 'Level>=0'])

    def test_1(self):
        self.check_net(caffe.Net(self.f, caffe.TEST, level=1), ['NoLevel', 'Level1Only', 'Level>=0', 'Level>=1'])


class TestStages(unittest.TestCase):
    TEST_NET = """
layer { name: "data" type: "DummyData" top: "data" dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } } }
layer { name: "A" type: "InnerProduct" bottom: "data" top: "A" include { stage: "A" }
  inner_product_param { num_output: 1 } }
layer { name: "B" type: "InnerProduct" bottom: "data" top: "B" include { stage: "B" }
  inner_product_param { num_output: 1 } }
layer { name: "AorB" type: "InnerProduct" bottom: "data" top: "AorB" include { stage: "A" } include { stage: "B" }
  inner_product_param { num_output: 1 } }
layer { name: "AandB" type: "InnerProduct" bottom: "data" top: "AandB" include { stage: "A" stage: "B" }
  inner_product_param { num_output: 1 } }
"""

    def setUp(self):
        self.f = temp_file(self.TEST_NET)

    def tearDown(self):
        os.remove(self.f)

    def check_net(self, net, blobs):
        self.assertEqual([b for b in net.blobs.keys() if 'data' not in b], blobs)

    def test_A(self):
        self.check_net(caffe.Net(self.f, caffe.TEST, stages=['A']), ['A', 'AorB'])

    def test_B(self):
        self.check_net(caffe.Net(self.f, caffe.TEST, stages=['B']), ['B', 'AorB'])

    def test_AandB(self):
        self.check_net(caffe.Net(self.f, caffe.TEST, stages=['A', 'B']), ['A', 'B', 'AorB', 'AandB'])


class TestAllInOne(unittest.TestCase):
    TEST_NET = """
layer { name: "train_data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } shape { dim: 1 dim: 1 dim: 1 dim: 1 } }
  include { phase: TRAIN stage: "train" } }
layer { name: "val_data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } shape { dim: 1 dim: 1 dim: 1 dim: 1 } }
  include { phase: TEST stage: "val" } }
layer { name: "deploy_data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } }
  include { phase: TEST stage: "deploy" } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss"
  include: { phase: TRAIN stage: "train" } include: { phase: TEST stage: "val" } }
layer { name: "pred" type: "Softmax" bottom: "ip" top: "pred" include: { phase: TEST stage: "deploy" } }
"""

    def setUp(self):
        self.f = temp_file(self.TEST_NET)

    def tearDown(self):
        os.remove(self.f)

    def check_net(self, net, outputs):
        self.assertEqual(list(net.blobs['data'].shape), [1, 1, 10, 10])
        self.assertEqual(net.outputs, outputs)

    def test_train(self):
        self.check_net(caffe.Net(self.f, caffe.TRAIN, stages=['train']), ['loss'])

    def test_val(self):
        self.check_net(caffe.Net(self.f, caffe.TEST, stages=['val']), ['loss'])

    def test_deploy(self):
        net = caffe.Net(self.f, caffe.TEST, stages=['deploy'])
        self.check_net(net, ['pred'])
        self.assertEqual(net.inputs, ['data'])


if __name__ == '__main__':
    unittest.main()
