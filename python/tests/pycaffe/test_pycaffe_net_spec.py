"""caffe.NetSpec, caffe.layers and caffe.params as pycaffe's
test_net_spec.py exercises them, caffe_pb2 text-format round trips of
real prototxts, the layer type list and caffe.draw."""
import os
import unittest

from google.protobuf import text_format

import caffe
from caffe import layers as L
from caffe import params as P
from pycaffe_testing import GOLDEN, SHARED, temp_file


def lenet(batch_size):
    n = caffe.NetSpec()
    n.data, n.label = L.DummyData(shape=[dict(dim=[batch_size, 1, 28, 28]), dict(dim=[batch_size, 1, 1, 1])],
                                  transform_param=dict(scale=1. / 255), ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20, weight_filler=dict(type='xavier'))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50, weight_filler=dict(type='xavier'))
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.ip1 = L.InnerProduct(n.pool2, num_output=500, weight_filler=dict(type='xavier'))
    n.relu1 = L.ReLU(n.ip1, in_place=True)
    n.ip2 = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type='xavier'))
    n.loss = L.SoftmaxWithLoss(n.ip2, n.label)
    return n.to_proto()


def anon_lenet(batch_size):
    data, label = L.DummyData(shape=[dict(dim=[batch_size, 1, 28, 28]), dict(dim=[batch_size, 1, 1, 1])],
                              transform_param=dict(scale=1. / 255), ntop=2)
    conv1 = L.Convolution(data, kernel_size=5, num_output=20, weight_filler=dict(type='xavier'))
    pool1 = L.Pooling(conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    conv2 = L.Convolution(pool1, kernel_size=5, num_output=50, weight_filler=dict(type='xavier'))
    pool2 = L.Pooling(conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    ip1 = L.InnerProduct(pool2, num_output=500, weight_filler=dict(type='xavier'))
    relu1 = L.ReLU(ip1, in_place=True)
    ip2 = L.InnerProduct(relu1, num_output=10, weight_filler=dict(type='xavier'))
    loss = L.SoftmaxWithLoss(ip2, label)
    return loss.to_proto()


def silent_net():
    n = caffe.NetSpec()
    n.data, n.data2 = L.DummyData(shape=dict(dim=3), ntop=2)
    n.silence_data = L.Silence(n.data, ntop=0)
    n.silence_data2 = L.Silence(n.data2, ntop=0)
    return n.to_proto()


class TestNetSpec(unittest.TestCase):
    def load_net(self, net_proto):
        f = temp_file(str(net_proto))
        try:
            return caffe.Net(f, caffe.TEST)
        finally:
            os.remove(f)

    def test_lenet(self):
        net_proto = lenet(50)
        self.assertEqual(net_proto.layer[6].bottom, net_proto.layer[6].top)  # relu in place
        net = self.load_net(net_proto)
        self.assertEqual(len(net.layers), 9)
        self.assertEqual(net.blobs['ip2'].shape, (50, 10))
        net_proto = anon_lenet(50)
        self.assertEqual(net_proto.layer[6].bottom, net_proto.layer[6].top)
        net = self.load_net(net_proto)
        self.assertEqual(len(net.layers), 9)
        self.assertEqual([lr.name for lr in net_proto.layer][:3], ['DummyData1', 'Convolution1', 'Pooling1'])

    def test_zero_tops(self):
        net = self.load_net(silent_net())
        self.assertEqual(len(net.forward()), 0)

    def test_type_error(self):
        data = L.DummyData(ntop=2)
        r = r"^Silence input 0 is not a Top \(type is <(type|class) 'tuple'>\)$"
        with self.assertRaisesRegex(TypeError, r):
            L.Silence(data, ntop=0)
        L.Silence(*data, ntop=0)

    def test_params(self):
        self.assertEqual(P.Pooling.MAX, caffe.proto.caffe_pb2.PoolingParameter.MAX)
        self.assertEqual(P.Pooling.AVE, 1)
        n = caffe.NetSpec()
        n.x = L.Input(shape=dict(dim=[2, 3]))
        n.y = L.InnerProduct(n.x, num_output=4, param=[dict(lr_mult=1), dict(lr_mult=2)])
        proto = n.to_proto()
        self.assertEqual([p.lr_mult for p in proto.layer[1].param], [1, 2])
        self.assertEqual(proto.layer[1].inner_product_param.num_output, 4)
        self.assertEqual(list(proto.layer[0].input_param.shape[0].dim), [2, 3])


class TestProto(unittest.TestCase):
    """caffe_pb2 is crema's schema: Caffe's files parse and print back."""

    def round_trip(self, path, message):
        with open(path) as f:
            text = f.read()
        m = text_format.Parse(text, message)
        again = text_format.Parse(text_format.MessageToString(m), type(message)())
        self.assertEqual(m, again)
        self.assertEqual(again.SerializeToString(), m.SerializeToString())
        return m

    def test_nets(self):
        m = self.round_trip(os.path.join(GOLDEN, 'models', 'lenet_mnist', 'net.prototxt'),
                            caffe.proto.caffe_pb2.NetParameter())
        self.assertEqual([lr.type for lr in m.layer][:2], ['Input', 'Convolution'])
        sq = os.path.join(SHARED, 'corpus', 'zoo', 'zoo_squeezenet', 'SqueezeNet_v1.1', 'train_val.prototxt')
        m = self.round_trip(sq, caffe.proto.caffe_pb2.NetParameter())
        self.assertTrue(any(lr.type == 'Concat' for lr in m.layer))

    def test_solver_and_weights(self):
        m = self.round_trip(os.path.join(GOLDEN, 'solvers', 'sgd_momentum_step', 'solver.prototxt'),
                            caffe.proto.caffe_pb2.SolverParameter())
        self.assertEqual(m.lr_policy, 'step')
        with open(os.path.join(GOLDEN, 'models', 'lenet_mnist', 'lenet_iter_10000.caffemodel'), 'rb') as f:
            w = caffe.proto.caffe_pb2.NetParameter.FromString(f.read())
        conv1 = [lr for lr in w.layer if lr.name == 'conv1'][0]
        self.assertEqual(list(conv1.blobs[0].shape.dim), [20, 1, 5, 5])

    def test_phases(self):
        self.assertEqual((caffe.TRAIN, caffe.TEST), (caffe.proto.caffe_pb2.TRAIN, caffe.proto.caffe_pb2.TEST))


class TestLayerTypeList(unittest.TestCase):
    def test_standard_types(self):
        types = caffe.layer_type_list()
        self.assertEqual(types, sorted(types))
        for t in ('Data', 'Convolution', 'InnerProduct', 'SoftmaxWithLoss', 'Python', 'LSTM'):
            self.assertIn(t, types)


class TestDraw(unittest.TestCase):
    def test_draw_net(self):
        try:
            import caffe.draw
        except ImportError as e:
            self.fail('caffe.draw needs pydot (scripts/deps.sh installs it): %s' % e)
        m = text_format.Parse(str(lenet(4)), caffe.proto.caffe_pb2.NetParameter())
        g = caffe.draw.get_pydot_graph(m, 'LR', display_lrm=True)
        dot = g.to_string()
        self.assertIn('conv1', dot)
        self.assertIn('kernel size: 5', dot)
        self.assertEqual(len(g.get_nodes()), 9 + 9)   # layers and blobs
        self.assertEqual(len(g.get_edges()), 19)
        self.assertEqual(caffe.draw.get_layer_label(m.layer[2], 'TB'),
                         '"pool1 (Pooling MAX) kernel size: 2 stride: 2 pad: 0"')


if __name__ == '__main__':
    unittest.main()
