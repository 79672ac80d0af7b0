"""A real script's worth of pycaffe: the golden LeNet classified from
image files with caffe.io and caffe.Classifier, the golden ResNet-20 run
with caffe.Net, SqueezeNet v1.1 through a Classifier's ten crops, and the
golden SGD run trained again with caffe.SGDSolver. Compared with what
BVLC Caffe computed (../shared/golden) where it did."""
import os
import shutil
import tempfile
import unittest

import numpy as np

import caffe
from pycaffe_testing import GOLDEN, SHARED, max_rel, read_golden

LENET = os.path.join(GOLDEN, 'models', 'lenet_mnist')


class TestLeNetClassifier(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.dir)

    def test_classify_files(self):
        from PIL import Image
        golden = read_golden(os.path.join(LENET, 'golden.caffemodel'))
        data = golden['blob/data'][0][0]             # the digits, uint8 * 1/256
        files = []
        for i, digit in enumerate(data):
            u8 = np.rint(digit[0] * 256).astype(np.uint8)
            self.assertEqual(np.abs(u8 * 0.00390625 - digit[0]).max(), 0)
            path = os.path.join(self.dir, 'digit%d.png' % i)
            Image.fromarray(u8).save(path)
            files.append(path)
        images = [caffe.io.load_image(f, color=False) for f in files]
        net = caffe.Classifier(os.path.join(LENET, 'net.prototxt'), os.path.join(LENET, 'lenet_iter_10000.caffemodel'),
                               image_dims=(28, 28), raw_scale=255, input_scale=0.00390625)
        probs = net.predict(images, oversample=False)
        want = golden['blob/loss'][0][0]
        self.assertEqual(probs.shape, (10, 10))
        self.assertLess(max_rel(probs, want), 1e-4)
        self.assertEqual(list(probs.argmax(1)), [0, 0, 1, 1, 2, 4, 4, 7, 9, 9])
        self.assertLess(max_rel(net.blobs['data'].data, data), 1e-6)
        # ten crops of each (all but the mirrored ones the whole digit here)
        probs10 = net.predict(images[:2], oversample=True)
        self.assertEqual(probs10.shape, (2, 10))
        self.assertEqual(list(probs10.argmax(1)), [0, 0])


class TestResNet20(unittest.TestCase):
    def test_forward(self):
        case = os.path.join(GOLDEN, 'models', 'resnet20_cifar')
        golden = read_golden(os.path.join(case, 'golden.caffemodel'))
        net = caffe.Net(os.path.join(case, 'net.prototxt'), caffe.TEST,
                        weights=os.path.join(case, 'ResNet_20.caffemodel'))
        name = net.inputs[0]
        out = net.forward(**{name: golden['blob/' + name][0][0]})
        self.assertEqual(list(out), ['prob'])
        self.assertLess(max_rel(out['prob'], golden['blob/prob'][0][0]), 1e-4)
        self.assertEqual(list(out['prob'].reshape(3, -1).argmax(1)), [5, 3, 9])
        for blob in net.blobs:
            if 'blob/' + blob in golden:
                self.assertLess(max_rel(net.blobs[blob].data, golden['blob/' + blob][0][0]), 1e-4, blob)


class TestResNet20Detector(unittest.TestCase):
    """caffe.Detector over one image file holding the three golden CIFAR
    images side by side, a window each: the golden classes."""

    def test_windows(self):
        from PIL import Image
        case = os.path.join(GOLDEN, 'models', 'resnet20_cifar')
        golden = read_golden(os.path.join(case, 'golden.caffemodel'))
        mean = np.array([113.9, 123.0, 125.3], np.float32)        # BGR, as the golden run's
        x = golden['blob/Data1'][0][0]                              # BGR - mean, 3 x 3 x 32 x 32
        rgb = np.rint((x + mean[None, :, None, None])[:, ::-1].transpose(0, 2, 3, 1)).astype(np.uint8)
        tmp = tempfile.mkdtemp()
        try:
            path = os.path.join(tmp, 'three.png')
            Image.fromarray(np.concatenate(list(rgb), axis=1)).save(path)
            det = caffe.Detector(os.path.join(case, 'net.prototxt'), os.path.join(case, 'ResNet_20.caffemodel'),
                                 mean=mean, raw_scale=255, channel_swap=(2, 1, 0))
            windows = [np.array([0, 32 * i, 32, 32 * (i + 1)]) for i in range(3)]
            found = det.detect_windows([(path, windows)])
            self.assertEqual([d['filename'] for d in found], [path] * 3)
            probs = np.array([d['prediction'] for d in found])
            self.assertEqual(list(probs.argmax(1)), [5, 3, 9])
            self.assertLess(max_rel(probs, golden['blob/prob'][0][0].reshape(3, -1)), 1e-3)
            # with context: windows grown by the padding, warped to the input
            det = caffe.Detector(os.path.join(case, 'net.prototxt'), os.path.join(case, 'ResNet_20.caffemodel'),
                                 mean=mean, raw_scale=255, channel_swap=(2, 1, 0), context_pad=2)
            # the mean in the image's own space (RGB, [0, 1]) pads what lies outside it
            np.testing.assert_allclose(det.crop_mean.ravel(), mean[::-1] / 255, rtol=1e-6)
            inner = [np.array([2, 32 * i + 2, 30, 32 * i + 30]) for i in range(3)]
            found = det.detect_windows([(path, inner)])
            self.assertEqual(np.array([d['prediction'] for d in found]).shape, (3, 10))
            crop = det.crop(caffe.io.load_image(path), inner[1])
            self.assertEqual(crop.shape, (32, 32, 3))
        finally:
            shutil.rmtree(tmp)


class TestSqueezeNet(unittest.TestCase):
    """No trained SqueezeNet weights are at hand: the deploy prototxt with
    weights from its fillers, saved and given to a Classifier; its ten-crop
    prediction is checked against the crops run through the net by hand."""

    def test_ten_crops(self):
        deploy = os.path.join(SHARED, 'corpus', 'zoo', 'zoo_squeezenet', 'SqueezeNet_v1.1', 'deploy.prototxt')
        tmp = tempfile.mkdtemp()
        try:
            caffe.set_random_seed(1701)
            init = caffe.Net(deploy, caffe.TEST)
            weights = os.path.join(tmp, 'squeezenet.caffemodel')
            init.save(weights)
            image = caffe.io.load_image(os.path.join(SHARED, 'corpus', 'formats', 'lenet_with_solverstate',
                                                     '1.jpg'))
            mean = np.array([104, 117, 123], np.float32)
            clf = caffe.Classifier(deploy, weights, image_dims=(256, 256), mean=mean, raw_scale=255,
                                   channel_swap=(2, 1, 0))
            probs = clf.predict([image])
            self.assertEqual(probs.shape, (1, 1000))
            self.assertAlmostEqual(float(probs.sum()), 1.0, places=4)
            # by hand
            resized = caffe.io.resize_image(image, (256, 256))
            crops = caffe.io.oversample([resized], (227, 227))
            x = np.stack([(c.transpose(2, 0, 1)[::-1] * 255 - mean[:, None, None]) for c in crops])
            out = init.forward(data=x.astype(np.float32))
            self.assertLess(max_rel(probs[0], out['prob'].reshape(10, -1).mean(0)), 1e-4)
        finally:
            shutil.rmtree(tmp)


class TestGoldenSGD(unittest.TestCase):
    """solvers/sgd_momentum_step (`caffe train -weights init.caffemodel`)
    again from Python: the losses per iteration and the weights after 6."""

    def test_train(self):
        case = os.path.join(GOLDEN, 'solvers', 'sgd_momentum_step')
        tmp = tempfile.mkdtemp()
        cwd = os.getcwd()
        try:
            for f in ('solver.prototxt', 'net.prototxt', 'train.h5', 'train_list.txt', 'init.caffemodel'):
                shutil.copy(os.path.join(case, f), tmp)
            os.chdir(tmp)
            losses = {}
            with open(os.path.join(case, 'log_values.tsv')) as f:
                for line in f.read().splitlines()[1:]:
                    kind, it, name, value = line.split('\t')
                    if kind == 'train' and name == 'loss':
                        losses[int(it)] = float(value)
            solver = caffe.SGDSolver('solver.prototxt')
            solver.net.copy_from('init.caffemodel')
            for it in range(6):
                solver.step(1)
                loss = float(solver.net.blobs['loss'].data)
                self.assertAlmostEqual(loss / losses[it], 1.0, places=4, msg='iteration %d' % it)
            self.assertEqual(solver.iter, 6)
            want = read_golden(os.path.join(case, 'snap_iter_6.caffemodel'))
            for name, blobs in solver.net.params.items():
                for j, b in enumerate(blobs):
                    self.assertLess(max_rel(b.data, want[name][j][0]), 6e-5, '%s[%d]' % (name, j))
            self.assertTrue(os.path.isfile('snap_iter_6.solverstate'))
        finally:
            os.chdir(cwd)
            shutil.rmtree(tmp)


if __name__ == '__main__':
    unittest.main()
