"""caffe.io as pycaffe's test_io.py exercises it (BlobProto shapes,
Datum labels), and the rest: round trips through Caffe's messages, the
Transformer, images loaded, resized and oversampled."""
import os
import shutil
import tempfile
import unittest

import numpy as np

import caffe


class TestBlobProtoToArray(unittest.TestCase):
    def test_old_format(self):
        data = np.zeros((10, 10))
        blob = caffe.proto.caffe_pb2.BlobProto()
        blob.data.extend(list(data.flatten()))
        shape = (1, 1, 10, 10)
        blob.num, blob.channels, blob.height, blob.width = shape
        self.assertEqual(caffe.io.blobproto_to_array(blob).shape, shape)

    def test_new_format(self):
        data = np.zeros((10, 10))
        blob = caffe.proto.caffe_pb2.BlobProto()
        blob.data.extend(list(data.flatten()))
        blob.shape.dim.extend(list(data.shape))
        self.assertEqual(caffe.io.blobproto_to_array(blob).shape, data.shape)

    def test_no_shape(self):
        blob = caffe.proto.caffe_pb2.BlobProto()
        blob.data.extend(list(np.zeros((10, 10)).flatten()))
        with self.assertRaises(ValueError):
            caffe.io.blobproto_to_array(blob)

    def test_scalar(self):
        blob = caffe.proto.caffe_pb2.BlobProto()
        blob.data.extend(list((np.ones((1)) * 123).flatten()))
        self.assertEqual(caffe.io.blobproto_to_array(blob), 123)

    def test_round_trip(self):
        a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
        d = -a
        blob = caffe.io.array_to_blobproto(a, d)
        np.testing.assert_array_equal(caffe.io.blobproto_to_array(blob), a)
        np.testing.assert_array_equal(caffe.io.blobproto_to_array(blob, return_diff=True), d)
        s = caffe.io.arraylist_to_blobprotovector_str([a, a[0]])
        back = caffe.io.blobprotovector_str_to_arraylist(s)
        np.testing.assert_array_equal(back[0], a)
        np.testing.assert_array_equal(back[1], a[0])

    def test_mean_binaryproto(self):
        """The ImageNet mean that ships with Caffe, as its users read it."""
        from pycaffe_testing import SHARED
        path = os.path.join(SHARED, 'corpus', 'formats', 'ilsvrc_2012_mean.binaryproto')
        blob = caffe.proto.caffe_pb2.BlobProto()
        with open(path, 'rb') as f:
            blob.ParseFromString(f.read())
        arr = caffe.io.blobproto_to_array(blob)
        self.assertEqual(arr.shape, (1, 3, 256, 256))
        npy = np.load(os.path.join(SHARED, 'corpus', 'formats', 'ilsvrc_2012_mean.npy'))
        np.testing.assert_allclose(arr[0], npy, rtol=1e-6)


class TestArrayToDatum(unittest.TestCase):
    def test_label_none_size(self):
        d1 = caffe.io.array_to_datum(np.ones((10, 10, 3)), label=1)
        d2 = caffe.io.array_to_datum(np.ones((10, 10, 3)))
        self.assertGreater(len(d1.SerializeToString()), len(d2.SerializeToString()))

    def test_round_trip(self):
        u8 = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
        d = caffe.io.array_to_datum(u8, label=7)
        self.assertEqual((d.channels, d.height, d.width, d.label), (3, 4, 5, 7))
        self.assertEqual(len(d.data), 60)
        np.testing.assert_array_equal(caffe.io.datum_to_array(d), u8)
        f = np.linspace(-1, 1, 60).reshape(3, 4, 5)
        d = caffe.io.array_to_datum(f)
        self.assertEqual(len(d.float_data), 60)
        np.testing.assert_allclose(caffe.io.datum_to_array(d), f, rtol=1e-6)
        with self.assertRaises(ValueError):
            caffe.io.array_to_datum(np.zeros((2, 2)))


class TestTransformer(unittest.TestCase):
    def setUp(self):
        self.t = caffe.io.Transformer({'data': (1, 3, 4, 5)})

    def test_preprocess_deprocess(self):
        t = self.t
        t.set_transpose('data', (2, 0, 1))
        t.set_channel_swap('data', (2, 1, 0))
        t.set_raw_scale('data', 255)
        t.set_mean('data', np.array([104, 117, 123], np.float32))
        t.set_input_scale('data', 0.5)
        img = np.random.RandomState(0).uniform(size=(4, 5, 3)).astype(np.float32)
        x = t.preprocess('data', img)
        self.assertEqual(x.shape, (3, 4, 5))
        want = (img.transpose(2, 0, 1)[::-1] * 255 - np.array([104, 117, 123])[:, None, None]) * 0.5
        np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(t.deprocess('data', x), img, rtol=1e-5, atol=1e-5)

    def test_checks(self):
        t = self.t
        with self.assertRaisesRegex(Exception, 'not one of the net inputs'):
            t.set_raw_scale('other', 1)
        with self.assertRaisesRegex(Exception, 'same number of dimensions'):
            t.set_transpose('data', (1, 0))
        with self.assertRaisesRegex(Exception, 'input channels'):
            t.set_channel_swap('data', (1, 0))
        with self.assertRaisesRegex(ValueError, 'Mean channels'):
            t.set_mean('data', np.zeros(4))
        with self.assertRaisesRegex(ValueError, 'incompatible with input shape'):
            t.set_mean('data', np.zeros((3, 5, 5)))
        t.set_mean('data', np.zeros((3, 4, 5)))


class TestImages(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.dir)

    def test_load_image(self):
        from PIL import Image
        rgb = np.random.RandomState(1).randint(0, 256, size=(6, 7, 3)).astype(np.uint8)
        path = os.path.join(self.dir, 'c.png')
        Image.fromarray(rgb).save(path)
        img = caffe.io.load_image(path)
        self.assertEqual((img.shape, img.dtype), ((6, 7, 3), np.float32))
        np.testing.assert_allclose(img, rgb / 255.0, atol=1e-6)
        gray = rgb[:, :, 0]
        Image.fromarray(gray).save(path)
        self.assertEqual(caffe.io.load_image(path, color=False).shape, (6, 7, 1))
        np.testing.assert_allclose(caffe.io.load_image(path, color=False)[:, :, 0], gray / 255.0, atol=1e-6)
        img = caffe.io.load_image(path)           # a gray file in colour: three equal channels
        self.assertEqual(img.shape, (6, 7, 3))
        np.testing.assert_array_equal(img[:, :, 0], img[:, :, 2])

    def test_resize_image(self):
        img = np.random.RandomState(2).uniform(size=(8, 6, 3)).astype(np.float32) * 100 - 20
        out = caffe.io.resize_image(img, (16, 12))
        self.assertEqual((out.shape, out.dtype), ((16, 12, 3), np.float32))
        self.assertGreaterEqual(out.min(), img.min() - 1e-4)
        self.assertLessEqual(out.max(), img.max() + 1e-4)
        np.testing.assert_allclose(caffe.io.resize_image(img, (8, 6)), img, rtol=1e-5, atol=1e-4)
        const = np.full((5, 5, 1), 3.5, np.float32)
        np.testing.assert_array_equal(caffe.io.resize_image(const, (2, 3)), np.full((2, 3, 1), 3.5))
        five = np.random.RandomState(3).uniform(size=(4, 4, 5)).astype(np.float32)
        self.assertEqual(caffe.io.resize_image(five, (8, 8)).shape, (8, 8, 5))

    def test_oversample(self):
        imgs = np.arange(2 * 6 * 6 * 1, dtype=np.float32).reshape(2, 6, 6, 1)
        crops = caffe.io.oversample(imgs, (4, 4))
        self.assertEqual(crops.shape, (20, 4, 4, 1))
        np.testing.assert_array_equal(crops[0], imgs[0, :4, :4])
        np.testing.assert_array_equal(crops[3], imgs[0, 2:, 2:])
        np.testing.assert_array_equal(crops[4], imgs[0, 1:5, 1:5])
        np.testing.assert_array_equal(crops[5], imgs[0, :4, :4][:, ::-1])
        np.testing.assert_array_equal(crops[10], imgs[1, :4, :4])


if __name__ == '__main__':
    unittest.main()
