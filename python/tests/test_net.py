"""The crema Python package against BVLC Caffe's golden outputs: the LeNet
model's probabilities and classes, LeNet train gradients, MemoryData feeding,
blob and weights round trips, errors, and the packaged library's loading.

Run: python3 python/tests/test_net.py  (CREMA_SHARED names ../shared,
CREMA_TMP a scratch directory)."""
import gc
import os
import sys
import tempfile
import unittest

import numpy as np

import crema

SHARED = os.environ.get("CREMA_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
GOLDEN = os.path.join(SHARED, "golden")
TMP = os.environ.get("CREMA_TMP") or tempfile.gettempdir()


def golden(*parts):
    p = os.path.join(GOLDEN, *parts)
    if not os.path.exists(p):
        raise FileNotFoundError("golden file %s is missing (set CREMA_SHARED)" % p)
    return p


def assert_close(test, got, want, rtol, atol, what):
    got = np.asarray(got)
    want = np.asarray(want)
    test.assertEqual(got.shape, want.shape, "%s: shape %s, expected %s" % (what, got.shape, want.shape))
    err = float(np.abs(got.astype(np.float64) - want).max()) if want.size else 0.0
    tol = rtol * (float(np.abs(want).max()) if want.size else 0.0) + atol
    test.assertLessEqual(err, tol, "%s: max |got - golden| = %.3g, allowed %.3g" % (what, err, tol))
    return err


def read_expected(path):
    """expected.txt: per image a header line, then 5 lines 'class prob'."""
    images = []
    with open(path) as f:
        for line in f:
            if line.startswith("img_"):
                images.append([])
            elif images and line.strip() and not line.startswith("top-1"):
                c, p = line.split()
                images[-1].append((int(c), float(p)))
    return images


class LenetModel(unittest.TestCase):
    """models/lenet_mnist: the deploy net with pretrained weights, TEST."""

    @classmethod
    def setUpClass(cls):
        d = os.path.join(GOLDEN, "models", "lenet_mnist")
        cls.dir = d
        cls.gold = crema.read_caffemodel(golden("models", "lenet_mnist", "golden.caffemodel"))
        cls.expected = read_expected(golden("models", "lenet_mnist", "expected.txt"))
        cls.net = crema.Net(os.path.join(d, "net.prototxt"), os.path.join(d, "lenet_iter_10000.caffemodel"),
                            phase="TEST")

    @classmethod
    def tearDownClass(cls):
        cls.net.close()

    def test_structure(self):
        net = self.net
        self.assertEqual(net.inputs, ["data"])
        self.assertEqual(net.outputs, ["loss"])
        self.assertEqual(net.layer_names, ["data", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "loss"])
        self.assertEqual(net.layer_types[1], "Convolution")
        self.assertEqual(list(net.params), ["conv1", "conv2", "ip1", "ip2"])
        self.assertEqual(net.top_names["relu1"], ["ip1"])
        self.assertEqual(net.bottom_names["conv2"], ["pool1"])
        self.assertEqual(net.blobs["data"].shape, (10, 1, 28, 28))
        self.assertEqual(net.params["conv1"][0].shape, (20, 1, 5, 5))

    def test_probabilities_and_classes(self):
        out = self.net.forward(data=self.gold["blob/data"][0].data)
        self.assertEqual(list(out), ["loss"])
        prob = out["loss"]
        # every blob as Caffe computed it (nets/models tolerance of the golden README)
        worst = 0.0
        for name in self.net.blob_names:
            err = assert_close(self, self.net.blobs[name].data, self.gold["blob/" + name][0].data, 1e-4, 1e-6,
                               "blob " + name)
            worst = max(worst, err)
        assert_close(self, prob, self.gold["blob/loss"][0].data, 0, 1e-4, "probabilities")
        # top-5 classes and probabilities as Caffe printed them (6 digits)
        self.assertEqual(len(self.expected), 10)
        for i, top5 in enumerate(self.expected):
            order = list(np.argsort(-prob[i], kind="stable")[:5])
            self.assertEqual(int(order[0]), top5[0][0], "image %d: top-1 class" % i)
            for c, p in top5:
                self.assertLessEqual(abs(float(prob[i, c]) - p), 1e-4, "image %d class %d: %g vs %g"
                                     % (i, c, prob[i, c], p))
        self.assertEqual([t[0][0] for t in self.expected], [0, 0, 1, 1, 2, 4, 4, 7, 9, 9])
        print("lenet_mnist: worst blob error %.3g, top-1 %s" % (worst, prob.argmax(1).tolist()))

    def test_forward_start_end(self):
        x = self.gold["blob/data"][0].data
        full = self.net.forward(data=x)["loss"]
        part = self.net.forward(end="conv1")
        self.assertEqual(list(part), ["conv1"])
        assert_close(self, part["conv1"], self.gold["blob/conv1"][0].data, 1e-4, 1e-6, "conv1 (end=conv1)")
        self.net.blobs["loss"].data[...] = 0
        rest = self.net.forward(start="pool1")
        np.testing.assert_array_equal(rest["loss"], full)
        by_index = self.net.forward(start=1, end=len(self.net.layer_names) - 1)
        np.testing.assert_array_equal(by_index["loss"], full)

    def test_weights_file_matches_params(self):
        w = crema.read_caffemodel(os.path.join(self.dir, "lenet_iter_10000.caffemodel"))
        for layer in self.net.params:
            for i, blob in enumerate(self.net.params[layer]):
                np.testing.assert_array_equal(blob.data, w[layer][i].data, "%s[%d]" % (layer, i))
                self.assertIsNone(w[layer][i].diff)


class LenetTrain(unittest.TestCase):
    """nets/lenet_train: forward and backward, every gradient against Caffe."""

    def test_gradients(self):
        d = os.path.join(GOLDEN, "nets", "lenet_train")
        gold = crema.read_caffemodel(golden("nets", "lenet_train", "golden.caffemodel"))
        with crema.Net(os.path.join(d, "net.prototxt"), os.path.join(d, "golden.caffemodel"), phase="TRAIN") as net:
            out = net.forward(data=gold["blob/data"][0].data, label=gold["blob/label"][0].data)
            assert_close(self, out["loss"], gold["blob/loss"][0].data, 1e-4, 1e-6, "loss")
            self.assertAlmostEqual(net.loss, float(gold["blob/loss"][0].data), delta=1e-4)
            # the weights file carries diffs too, and loading copies them (as Caffe's FromProto)
            net.clear_param_diffs()
            diffs = net.backward()
            self.assertEqual(list(diffs), ["data", "label"])
            worst = assert_close(self, diffs["data"], gold["blob/data"][0].diff, 1e-4, 1e-6, "data gradient")
            for layer in net.params:
                for i, blob in enumerate(net.params[layer]):
                    worst = max(worst, assert_close(self, blob.diff, gold[layer][i].diff, 1e-4, 1e-6,
                                                    "%s[%d] gradient" % (layer, i)))
            for name in ("conv1", "pool1", "conv2", "pool2", "ip2"):
                worst = max(worst, assert_close(self, net.blobs[name].diff, gold["blob/" + name][0].diff,
                                                1e-4, 1e-6, "blob %s diff" % name))
            # parameter diffs accumulate until cleared
            g = net.params["ip2"][0].diff.copy()
            net.forward()
            net.backward()
            assert_close(self, net.params["ip2"][0].diff, 2 * g, 1e-5, 1e-7, "accumulated ip2 gradient")
            net.clear_param_diffs()
            self.assertEqual(float(np.abs(net.params["ip2"][0].diff).max()), 0.0)
            print("lenet_train: worst gradient error %.3g" % worst)


class MemoryData(unittest.TestCase):
    """data/memory_data: arrays fed to a MemoryData layer, three forwards."""

    def test_feeding(self):
        d = os.path.join(GOLDEN, "data", "memory_data")
        gold = crema.read_caffemodel(golden("data", "memory_data", "golden.caffemodel"))
        with crema.Net(os.path.join(d, "net.prototxt"), phase="TRAIN") as net:
            net.set_input_arrays(gold["fed/data"][0].data, gold["fed/label"][0].data)
            for k in (1, 2, 3):
                out = net.forward()
                np.testing.assert_array_equal(out["data"], gold["blob/data@%d" % k][0].data, "data@%d" % k)
                np.testing.assert_array_equal(out["label"], gold["blob/label@%d" % k][0].data, "label@%d" % k)
            # float64 and non-contiguous input is converted
            fed = np.asfortranarray(gold["fed/data"][0].data.astype(np.float64))
            net.set_input_arrays(fed, gold["fed/label"][0].data.astype(np.int64), layer="data")
            np.testing.assert_array_equal(net.forward()["data"], gold["blob/data@1"][0].data)
            with self.assertRaises(crema.CremaError) as e:
                net.set_input_arrays(np.zeros((6, 2, 3, 2), np.float32), np.zeros(6, np.float32))
            self.assertIn("2 x 2 x 3", str(e.exception))
            with self.assertRaises(crema.CremaError) as e:
                net.set_input_arrays(np.zeros((4, 2, 2, 3), np.float32), np.zeros(4, np.float32))
            self.assertIn("multiple of batch_size", str(e.exception))
            self.assertEqual(e.exception.status, 3)
            with self.assertRaises(crema.CremaError):
                net.set_input_arrays(np.zeros((6, 2, 2, 3), np.float32), np.zeros(5, np.float32))

    def test_cos_data(self):
        """CaffeOnSpark's CoSData layer: numeric, string and transposed tops,
        encoded images decoded, resized and transformed, sample_num_axes."""
        path = os.path.join(TMP, "cos_data_%d.prototxt" % os.getpid())
        with open(path, "w") as f:
            f.write('layer { name: "cos" type: "CoSData" top: "a" top: "s" top: "img" top: "raw"\n'
                    '  cos_data_param { batch_size: 2\n'
                    '    top { name: "a" type: FLOAT_ARRAY channels: 3 }\n'
                    '    top { name: "s" type: STRING channels: 1 transpose: true }\n'
                    '    top { name: "img" type: ENCODED_IMAGE channels: 1 height: 4 width: 4 sample_num_axes: 3\n'
                    '          transform_param { scale: 0.5 } }\n'
                    '    top { name: "raw" type: RAW_IMAGE channels: 1 height: 2 width: 2 sample_num_axes: 2\n'
                    '          out_height: 4 out_width: 1 } } }\n')
        import struct
        import zlib

        def png(a):
            h, w = a.shape
            raw = b"".join(b"\x00" + a[i].tobytes() for i in range(h))

            def chunk(t, d):
                return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
            return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
                    chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

        # 8x8 images resized to the top's 4x4
        imgs = [png(np.full((8, 8), 10 * i, np.uint8)) for i in range(4)]
        raw = np.arange(16, dtype=np.uint8).reshape(4, 1, 2, 2)
        try:
            with crema.Net(path, phase="TRAIN") as net:
                self.assertEqual(net.blobs["a"].shape, (2, 3))
                self.assertEqual(net.blobs["s"].shape, (1, 2))
                self.assertEqual(net.blobs["img"].shape, (2, 1, 4, 4))
                self.assertEqual(net.blobs["raw"].shape, (2, 1, 4))
                net.set_cos_data("cos", np.arange(12).reshape(4, 3), np.array(["1.5", "2", "3", "-4"]), imgs, raw)
                out = net.forward()
                np.testing.assert_array_equal(out["a"], [[0, 1, 2], [3, 4, 5]])
                np.testing.assert_array_equal(out["s"], [[1.5, 2]])
                np.testing.assert_array_equal(out["img"][:, 0], np.stack([np.full((4, 4), 0.0), np.full((4, 4), 5.0)]))
                np.testing.assert_array_equal(out["raw"], [[[0, 1, 2, 3]], [[4, 5, 6, 7]]])
                out = net.forward()
                np.testing.assert_array_equal(out["s"], [[3, -4]])
                np.testing.assert_array_equal(out["img"][:, 0, 0, 0], [10, 15])
                out = net.forward()  # wraps around
                np.testing.assert_array_equal(out["a"], [[0, 1, 2], [3, 4, 5]])
                with self.assertRaises(crema.CremaError) as e:
                    net.set_cos_data("cos", np.zeros((3, 3)), np.zeros(3), imgs[:3], raw[:3])
                self.assertIn("multiple of batch_size", str(e.exception))
                with self.assertRaises(crema.CremaError) as e:
                    net.set_cos_data("cos", np.zeros((4, 2)), np.zeros(4), imgs, raw)
                self.assertIn("3 values per sample", str(e.exception))
                with self.assertRaises(crema.CremaError) as e:
                    net.set_cos_data("cos", np.zeros((4, 3)), np.zeros(4), [b"not an image"] * 4, raw)
                self.assertIn("image 0", str(e.exception))
                with self.assertRaises(crema.CremaError):
                    net.set_cos_data("cos", np.zeros((4, 3)))
        finally:
            os.remove(path)

    def test_cos_data_unfed(self):
        path = os.path.join(TMP, "cos_unfed_%d.prototxt" % os.getpid())
        with open(path, "w") as f:
            f.write('layer { name: "cos" type: "CoSData" top: "a"\n'
                    '  cos_data_param { batch_size: 2 top { name: "a" type: FLOAT channels: 1 } } }\n')
        try:
            with crema.Net(path, phase="TEST") as net:
                with self.assertRaises(crema.CremaError) as e:
                    net.forward()
                self.assertIn("feed it first", str(e.exception))
        finally:
            os.remove(path)

    def test_memory_images(self):
        """MemoryData fed uint8 images with the layer's transform_param."""
        path = os.path.join(TMP, "mem_img_%d.prototxt" % os.getpid())
        with open(path, "w") as f:
            f.write('layer { name: "data" type: "MemoryData" top: "data" top: "label"\n'
                    '  memory_data_param { batch_size: 2 channels: 1 height: 2 width: 2 }\n'
                    '  transform_param { scale: 0.5 mean_value: 2 } }\n')
        try:
            with crema.Net(path, phase="TEST") as net:
                imgs = np.arange(8, dtype=np.uint8).reshape(2, 1, 2, 2)
                net.set_input_images("data", imgs, [7, 8])
                out = net.forward()
                np.testing.assert_allclose(out["data"], (imgs.astype(np.float32) - 2) * 0.5)
                np.testing.assert_array_equal(out["label"].reshape(-1), [7, 8])
                with self.assertRaises(crema.CremaError) as e:
                    net.set_input_images("data", np.zeros((2, 1, 3, 3), np.uint8), [0, 0])
                self.assertIn("takes 4", str(e.exception))
        finally:
            os.remove(path)


class RoundTrips(unittest.TestCase):
    def setUp(self):
        self.dir = os.path.join(GOLDEN, "models", "lenet_mnist")
        self.net = crema.Net(os.path.join(self.dir, "net.prototxt"),
                             os.path.join(self.dir, "lenet_iter_10000.caffemodel"))

    def tearDown(self):
        self.net.close()

    def test_blob_views(self):
        rng = np.random.RandomState(7)
        x = rng.rand(10, 1, 28, 28).astype(np.float32)
        b = self.net.blobs["data"]
        b.data = x
        np.testing.assert_array_equal(self.net.blobs["data"].data, x)
        v = b.data  # a view: writes land in the net
        v[0, 0, 0, 0] = 42.0
        self.assertEqual(float(self.net.blobs["data"].data[0, 0, 0, 0]), 42.0)
        b.diff = 2 * x
        np.testing.assert_array_equal(self.net.blobs["data"].diff, 2 * x)
        with self.assertRaises(ValueError):
            b.data = np.zeros((3, 3), np.float32)
        # the view feeds forward
        v[...] = x
        got = self.net.forward()["loss"]
        want = self.net.forward(data=x)["loss"]
        np.testing.assert_array_equal(got, want)

    def test_reshape(self):
        x = np.random.RandomState(1).rand(3, 1, 28, 28).astype(np.float32)
        out = self.net.forward(data=x)
        self.assertEqual(out["loss"].shape, (3, 10))
        self.assertEqual(self.net.blobs["conv1"].shape, (3, 20, 24, 24))
        assert_close(self, out["loss"].sum(axis=1), np.ones(3), 0, 1e-5, "softmax rows")
        self.net.blobs["data"].reshape(2, 1, 28, 28)
        self.assertEqual(self.net.blobs["ip2"].shape, (2, 10))
        self.net.set_input("data", x[:1])
        self.assertEqual(self.net.forward()["loss"].shape, (1, 10))

    def test_params_save_load(self):
        rng = np.random.RandomState(3)
        new = {}
        for layer in self.net.params:
            for i, blob in enumerate(self.net.params[layer]):
                new[layer, i] = rng.randn(*blob.shape).astype(np.float32)
                blob.data = new[layer, i]
        path = os.path.join(TMP, "py_roundtrip_%d.caffemodel" % os.getpid())
        try:
            self.net.save(path)
            w = crema.read_caffemodel(path)
            for (layer, i), arr in new.items():
                np.testing.assert_array_equal(w[layer][i].data, arr, "%s[%d] in the saved file" % (layer, i))
            with crema.Net(os.path.join(self.dir, "net.prototxt"), path) as other:
                for (layer, i), arr in new.items():
                    np.testing.assert_array_equal(other.params[layer][i].data, arr)
            # load_weights puts the original back
            self.net.load_weights(os.path.join(self.dir, "lenet_iter_10000.caffemodel"))
            orig = crema.read_caffemodel(os.path.join(self.dir, "lenet_iter_10000.caffemodel"))
            np.testing.assert_array_equal(self.net.params["ip1"][1].data, orig["ip1"][1].data)
        finally:
            if os.path.exists(path):
                os.remove(path)


class Errors(unittest.TestCase):
    def write(self, name, text):
        path = os.path.join(TMP, "py_%d_%s" % (os.getpid(), name))
        with open(path, "w") as f:
            f.write(text)
        self.addCleanup(os.remove, path)
        return path

    def test_bad_prototxt(self):
        path = self.write("bad.prototxt", 'name: "x"\nlayer {\n  name: "a"\n  type: "Input"\n  top: "a"\n  bogus: 1\n}\n')
        with self.assertRaises(crema.CremaError) as e:
            crema.Net(path)
        self.assertEqual(e.exception.status, 2)
        self.assertEqual(e.exception.status_name is not None, True)
        self.assertIn(os.path.basename(path), str(e.exception))
        self.assertIn("bogus", str(e.exception))

    def test_unknown_layer_type(self):
        path = self.write("unknown.prototxt", 'layer { name: "a" type: "NoSuchLayer" top: "a" }\n')
        with self.assertRaises(crema.CremaError) as e:
            crema.Net(path)
        self.assertIn("NoSuchLayer", str(e.exception))

    def test_missing_files(self):
        with self.assertRaises(crema.CremaError) as e:
            crema.Net(os.path.join(TMP, "no_such.prototxt"))
        self.assertEqual(e.exception.status, 1)
        self.assertIn("no_such.prototxt", str(e.exception))
        with self.assertRaises(crema.CremaError):
            crema.read_caffemodel(os.path.join(TMP, "no_such.caffemodel"))
        d = os.path.join(GOLDEN, "models", "lenet_mnist")
        with self.assertRaises(crema.CremaError):
            crema.Net(os.path.join(d, "net.prototxt"), os.path.join(TMP, "no_such.caffemodel"))

    def test_bad_weights_and_names(self):
        d = os.path.join(GOLDEN, "models", "lenet_mnist")
        garbage = self.write("garbage.caffemodel", "this is not a protobuf \xff\xfe")
        with self.assertRaises(crema.CremaError):
            crema.read_caffemodel(garbage)
        with crema.Net(os.path.join(d, "net.prototxt")) as net:
            with self.assertRaises(crema.CremaError):
                net.load_weights(garbage)
            with self.assertRaises(KeyError):
                net.blobs["nope"]
            with self.assertRaises(KeyError):
                net.params["pool1"]
            with self.assertRaises(KeyError):
                net.forward(end="nope")
            with self.assertRaises(ValueError):
                crema.Net(os.path.join(d, "net.prototxt"), phase="VALIDATE")
            with self.assertRaises(crema.CremaError):
                net.set_input_arrays(np.zeros((1, 1)), np.zeros(1))  # no MemoryData layer
        with self.assertRaises(crema.CremaError) as e:
            net.forward()
        self.assertIn("closed", str(e.exception))

    def test_lifetime(self):
        d = os.path.join(GOLDEN, "models", "lenet_mnist")
        net = crema.Net(os.path.join(d, "net.prototxt"), os.path.join(d, "lenet_iter_10000.caffemodel"))
        w = net.params["conv1"][0].data
        want = w.copy()
        net.close()
        self.assertTrue(net.closed)
        # the view keeps the C net alive: still readable after close
        np.testing.assert_array_equal(w, want)
        del w
        net.close()  # twice is fine
        for _ in range(3):  # garbage-collected nets free their C memory
            crema.Net(os.path.join(d, "net.prototxt"))
        gc.collect()


class SolverRun(unittest.TestCase):
    """solvers/sgd_momentum_step, run in a copy of the case folder (the
    solver snapshots every iteration into its working directory)."""

    def setUp(self):
        import shutil
        src = os.path.join(GOLDEN, "solvers", "sgd_momentum_step")
        self.gold = src
        self.work = os.path.join(TMP, "py_solver_%d" % os.getpid())
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        for f in ("solver.prototxt", "net.prototxt", "train.h5", "train_list.txt", "init.caffemodel"):
            shutil.copy(golden("solvers", "sgd_momentum_step", f), self.work)
        self.cwd = os.getcwd()
        os.chdir(self.work)
        self.addCleanup(shutil.rmtree, self.work, True)
        self.addCleanup(os.chdir, self.cwd)

    def compare(self, params, n, what):
        want = crema.read_caffemodel(os.path.join(self.gold, "snap_iter_%d.caffemodel" % n))
        worst = 0.0
        for layer in ("ip1", "ip2"):
            for i in range(2):
                worst = max(worst, assert_close(self, params(layer, i), want[layer][i].data, 1e-5 * n, 1e-7,
                                                "%s: %s[%d] after %d iterations" % (what, layer, i, n)))
        return worst

    def test_step_snapshot_restore(self):
        with crema.Solver("solver.prototxt") as solver:
            self.assertEqual(solver.iter, 0)
            self.assertEqual(solver.test_nets, [])
            self.assertEqual(solver.net.phase, "TRAIN")
            solver.net.copy_from("init.caffemodel")  # caffe train -weights init.caffemodel
            solver.step(3)
            self.assertEqual(solver.iter, 3)
            worst = self.compare(lambda l, i: solver.net.params[l][i].data, 3, "train net")
            # snapshot: 1 wrote every iteration; the files hold Caffe's weights too
            mine = crema.read_caffemodel("snap_iter_3.caffemodel")
            worst = max(worst, self.compare(lambda l, i: mine[l][i].data, 3, "snap_iter_3.caffemodel"))
            self.assertTrue(os.path.exists("snap_iter_3.solverstate"))
        with crema.Solver("solver.prototxt") as again:
            again.restore("snap_iter_2.solverstate")
            self.assertEqual(again.iter, 2)
            again.step(1)
            worst = max(worst, self.compare(lambda l, i: again.net.params[l][i].data, 3, "restored at 2, 1 step"))
            again.step(3)
            worst = max(worst, self.compare(lambda l, i: again.net.params[l][i].data, 6, "restored, 6"))
            os.remove("snap_iter_6.caffemodel")
            again.snapshot()
            self.assertTrue(os.path.exists("snap_iter_6.caffemodel"))
        print("sgd_momentum_step: worst weight error %.3g" % worst)

    def test_solver_errors(self):
        with self.assertRaises(crema.CremaError):
            crema.Solver("no_such_solver.prototxt")
        with open("bad_solver.prototxt", "w") as f:
            f.write('net: "net.prototxt"\nbase_lr: fast\n')
        with self.assertRaises(crema.CremaError) as e:
            crema.Solver("bad_solver.prototxt")
        self.assertIn("base_lr", str(e.exception))
        solver = crema.Solver("solver.prototxt")
        with self.assertRaises(crema.CremaError):
            solver.restore("no_such.solverstate")
        view = solver.net.params["ip1"][0].data
        want = view.copy()
        solver.close()
        np.testing.assert_array_equal(view, want)  # the view kept the solver alive
        with self.assertRaises(crema.CremaError):
            solver.step(1)
        with self.assertRaises(crema.CremaError):
            solver.net.forward()


class Devices(unittest.TestCase):
    """pycaffe's mode calls. Where there is no GPU (CI), asking for one is a
    CremaError saying why, and the mode stays CPU."""

    def test_modes(self):
        crema.set_mode_cpu()
        with self.assertRaises(crema.CremaError):
            crema.set_device(-1)
        if crema.gpu_count() == 0:
            with self.assertRaises(crema.CremaError) as e:
                crema.set_mode_gpu()
            self.assertRegex(str(e.exception), "CUDA|GPU")
            # a net opened afterwards still computes on the CPU
            net = crema.Net(golden("models", "lenet_mnist", "net.prototxt"), phase="TEST")
            net.close()
        else:
            crema.set_device(0)
            crema.set_mode_gpu()
            crema.set_mode_cpu()


class SparkDevices(unittest.TestCase):
    """crema.spark's one rank per GPU: a task's assigned GPU, else the
    solver's solver_mode GPU over the GPUs present, else the CPU."""

    def test_cpu_without_gpus(self):
        from crema.spark import rank

        class Job:
            solver_text = 'base_lr: 0.01 solver_mode: GPU'

        self.assertEqual(rank.task_gpus(), [])  # not in a Spark task
        if crema.gpu_count() == 0:
            self.assertEqual(rank.choose_device(Job(), 0), "CPU")
        Job.solver_text = 'base_lr: 0.01 solver_mode: CPU'
        self.assertEqual(rank.choose_device(Job(), 1), "CPU")


class Prototxt(unittest.TestCase):
    """crema.Message: libcrema's reader, paths, rewrites and FilterNet."""

    NET = ('name: "n" layer { name: "d" type: "MemoryData" top: "data" include { phase: TRAIN } '
           'source_class: "com.yahoo.ml.caffe.LMDB" memory_data_param { source: "a" batch_size: 64 } } '
           'layer { name: "d" type: "MemoryData" top: "data" include { phase: TEST } '
           'memory_data_param { batch_size: 100 } } '
           'layer { name: "s" type: "ReLU" bottom: "data" top: "data" include { stage: "x" } }')

    def test_read_and_rewrite(self):
        m = crema.Message("NetParameter", self.NET)
        self.assertEqual(m.count("layer"), 3)
        self.assertEqual(m.getint("layer[0].memory_data_param.batch_size"), 64)
        self.assertEqual(m.get("layer[1].memory_data_param.dataframe_format"), "parquet")  # the declared default
        self.assertIsNone(m.get("layer[1].transform_param"))
        self.assertIsNone(m.get("layer[5].name"))
        self.assertEqual(m.field("layer[0].include[0].phase"), ("enum", False))
        m.set("layer[1].memory_data_param.source", 'q"uo\\te\n')
        m.clear("layer[0].source_class")
        m.set("layer[1].transform_param", crema.Message("TransformationParameter", "scale: 0.5"))
        m.add("layer[2].include", crema.Literal("{ phase: TEST }"))
        again = crema.Message("NetParameter", m.text())
        self.assertEqual(again.get("layer[1].memory_data_param.source"), 'q"uo\\te\n')
        self.assertFalse(again.has("layer[0].source_class"))
        self.assertEqual(again.getfloat("layer[1].transform_param.scale"), 0.5)
        self.assertEqual(again.getlist("layer[2].include[1].stage"), [])
        import pickle
        self.assertEqual(pickle.loads(pickle.dumps(again)).text(), again.text())
        with self.assertRaises(crema.CremaError) as e:
            m.set("layer[0].memory_data_param.batch_size", "64")  # a str is a quoted string
        self.assertIn("batch_size", str(e.exception))
        with self.assertRaises(crema.CremaError):
            m.get("layer[0].no_such_field")
        with self.assertRaises(crema.CremaError) as e:
            crema.Message("NetParameter", "layer { nmae: 'x' }", filename="typo.prototxt")
        self.assertIn("typo.prototxt:1:9", str(e.exception))

    def test_filter_as_the_engine(self):
        for state, names in (("phase: TRAIN", ["d"]), ("phase: TEST", ["d"]), ('phase: TEST stage: "x"', ["d", "s"])):
            m = crema.Message("NetParameter", self.NET).filter_net(state)
            self.assertEqual([m.get("layer[%d].name" % i) for i in range(m.count("layer"))], names, state)
        m = crema.Message("NetParameter", self.NET).filter_net("phase: TEST")
        self.assertEqual(m.getint("layer[0].memory_data_param.batch_size"), 100)
        old = crema.Message("NetParameter", 'layers { name: "r" type: RELU bottom: "a" top: "a" }')
        self.assertTrue(old.upgrade())
        self.assertEqual(old.get("layer[0].type"), "ReLU")


class Packaging(unittest.TestCase):
    def test_library_is_packaged(self):
        lib = crema.library_path()
        pkg = os.path.dirname(os.path.abspath(crema.__file__))
        if os.environ.get("CREMA_TEST_INSTALLED"):
            self.assertNotIn("LD_LIBRARY_PATH", os.environ)
            self.assertNotIn("CREMA_LIBRARY", os.environ)
            self.assertEqual(lib, os.path.join(pkg, "_lib", "libcrema.so"))
            self.assertTrue(pkg.startswith(sys.prefix), "%s is not inside %s" % (pkg, sys.prefix))
        self.assertTrue(os.path.isfile(lib))
        self.assertTrue(crema.version())


if __name__ == "__main__":
    unittest.main(verbosity=2)
