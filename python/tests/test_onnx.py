"""ONNX export checked by ONNX Runtime and onnx.checker.

Every deploy net of ../shared/corpus that crema runs (the list comes from
`test_zoo_nets --list-deploy`, CREMA_ZOO_LIST), with random weights, at
batch 1; the two pretrained models of ../shared/golden; every golden layer
case (a layer with an ONNX equivalent must agree, one without must be
refused by name); opsets, the open batch size, the command line, V0/V1
nets, and LeNet trained on Fashion-MNIST scored by `crema test` and by ONNX
Runtime. Agreement: for every blob of the net that the ONNX graph holds,
max |onnx - crema| <= 1e-4 * max |crema|.

Run by tests/test_python_onnx.sh: python3 test_onnx.py, with CREMA_SHARED,
CREMA_TMP, CREMA_BIN (the crema command) and CREMA_ZOO_LIST set."""
import os
import shutil
import subprocess
import sys
import time
import unittest
import zlib

import numpy as np
import onnx
import onnxruntime as ort

import crema

SHARED = os.environ.get("CREMA_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
GOLDEN = os.path.join(SHARED, "golden")
CORPUS = os.path.join(SHARED, "corpus")
TMP = os.environ.get("CREMA_TMP") or "/tmp"
BIN = os.environ.get("CREMA_BIN", "crema")
ZOO_LIST = os.environ.get("CREMA_ZOO_LIST")

# The bound, per blob, relative to the blob's largest magnitude.
RTOL = 1e-4

# Layer types the exporter refuses (the README says why).
REFUSED = {"Data", "ImageData", "HDF5Data", "WindowData", "MemoryData", "CoSData", "HDF5Output", "RNN", "LSTM",
           "SoftmaxWithLoss", "EuclideanLoss", "SigmoidCrossEntropyLoss", "HingeLoss", "ContrastiveLoss",
           "InfogainLoss", "MultinomialLogisticLoss", "Accuracy"}

REPORT = []  # (what, blobs compared, worst relative error, seconds)


def tmp_path(name):
    return os.path.join(TMP, name)


def session(model):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def _varint(buf, i):
    v = shift = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return v, i


def _fields(buf, start, end):
    """(field number, value) of a protobuf message's bytes: ints for
    varints, (start, end) for length-delimited values, None otherwise."""
    i = start
    while i < end:
        key, i = _varint(buf, i)
        wire = key & 7
        if wire == 0:
            v, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            v, i = (i, i + n), i + n
        elif wire in (1, 5):
            v, i = None, i + (8 if wire == 1 else 4)
        else:
            raise ValueError("unexpected protobuf wire type %d" % wire)
        yield key >> 3, v


def node_outputs(buf):
    """The names of every node output and of the graph's outputs in a
    serialized ModelProto, found without decoding the weights
    (ModelProto.graph = 7; GraphProto.node = 1, .output = 12; NodeProto.output
    = 2; ValueInfoProto.name = 1)."""
    made, outputs = set(), set()
    for f, v in _fields(buf, 0, len(buf)):
        if f != 7 or not isinstance(v, tuple):
            continue
        for g, gv in _fields(buf, *v):
            if g in (1, 12) and isinstance(gv, tuple):
                for h, hv in _fields(buf, *gv):
                    if h == (2 if g == 1 else 1) and isinstance(hv, tuple):
                        (made if g == 1 else outputs).add(bytes(buf[hv[0]:hv[1]]).decode())
    return made, outputs


def every_blob(path, blob_names):
    """The model at path with every node output named as a blob of the net
    (the blob's final value) made a graph output too. The outputs are
    appended as a second ModelProto.graph, which protobuf parsers merge into
    the first, so that big models are not decoded and encoded again."""
    with open(path, "rb") as f:
        buf = f.read()
    made, outputs = node_outputs(buf)
    extra = onnx.GraphProto()
    for b in blob_names:
        if b in made and b not in outputs:
            extra.output.append(onnx.helper.make_tensor_value_info(b, onnx.TensorProto.FLOAT, None))
    return buf + onnx.ModelProto(graph=extra).SerializeToString()


def relative_error(got, want):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return float("inf"), "shape %s, crema %s" % (got.shape, want.shape)
    if not np.all(np.isfinite(want)):
        return float("inf"), "crema's values are not all finite"
    if want.size == 0:
        return 0.0, ""
    scale = float(np.abs(want).max())
    err = float(np.abs(got - want).max())
    if not np.isfinite(err):
        return float("inf"), "ONNX Runtime's values are not all finite"
    return (err / scale if scale > 0 else err), ""


def compare(test, net, feeds, path, what):
    """Runs the exported model on feeds; every blob it holds against the
    net's (forwarded already). Returns (blobs compared, worst error)."""
    model = every_blob(path, net.blob_names)
    sess = session(model)
    del model
    names = [o.name for o in sess.get_outputs()]
    res = sess.run(None, feeds)
    worst, worst_blob = 0.0, None
    for name, r in zip(names, res):
        err, why = relative_error(r, net.blobs[name].data)
        test.assertEqual(why, "", "%s: blob %s: %s" % (what, name, why))
        if err >= worst:
            worst, worst_blob = err, name
    test.assertGreater(len(names), 0, "%s: nothing to compare" % what)
    test.assertLessEqual(worst, RTOL, "%s: blob %s differs by %.3g of its largest value" % (what, worst_blob, worst))
    return len(names), worst


def randomize(net, rng):
    """Weights a deploy net lacks (its prototxt has no fillers: crema fills
    zeros, as Caffe): He-scaled uniform weights, small biases, Scale
    factors near 1. Runs the net forward layer by layer meanwhile, giving
    each BatchNorm the statistics of what reaches it, shifted so that about
    three quarters of the ReLUs after it pass: random nets whose ReLUs pass
    only half amplify float32 rounding exponentially with depth (errors of
    1e-3 after 150 layers, in crema against itself as much as against ONNX
    Runtime), which would hide what the comparison is for. The net has been
    forwarded on return."""
    types = dict(zip(net.layer_names, net.layer_types))
    bottoms = net.bottom_names
    for i, name in enumerate(net.layer_names):
        t = types[name]
        params = net.params[name] if name in net.params else []
        if t == "BatchNorm":
            x = net.blobs[bottoms[name][0]].data.astype(np.float64)
            axes = (0,) + tuple(range(2, x.ndim))
            var = x.var(axis=axes)
            var = var * rng.uniform(1.0, 1.2, var.shape) + 0.1 * var.mean() + 1e-3
            shift = rng.uniform(0.5, 1.0, var.shape) * np.sqrt(var)
            params[0].data[...] = x.mean(axis=axes) - shift
            params[1].data[...] = var
            params[2].data[...] = 1.0
        elif t in ("Convolution", "Deconvolution", "InnerProduct", "Embed"):
            w = params[0].data
            fan_in = max(w.size // max(w.shape[0], 1), 1)
            a = np.float32(np.sqrt(6.0 / fan_in))  # He's uniform: variance 2 / fan_in
            rng.random(out=w.reshape(-1), dtype=np.float32)
            w *= 2 * a
            w -= a
            for b in params[1:]:
                b.data[...] = rng.uniform(-0.1, 0.1, b.shape)
        elif t == "Scale":
            params[0].data[...] = rng.uniform(0.5, 1.5, params[0].shape)
            for b in params[1:]:
                b.data[...] = rng.uniform(-0.1, 0.1, b.shape)
        elif t == "PReLU":
            params[0].data[...] = rng.uniform(0.05, 0.3, params[0].shape)
        else:
            for p in params:
                p.data[...] = rng.uniform(-0.2, 0.2, p.shape)
        net.forward(start=i, end=i)


def inputs_at_batch(net, batch, rng):
    feeds = {}
    for n in net.inputs:
        shape = list(net.blobs[n].shape)
        shape[0] = batch
        net.blobs[n].reshape(*shape)
        feeds[n] = rng.uniform(-1, 1, shape).astype(np.float32)
        net.blobs[n].data[...] = feeds[n]
    return feeds


def export_and_check(test, net, path, **kw):
    net.export_onnx(path, **kw)
    onnx.checker.check_model(path, full_check=True)


def zoo_nets():
    if not ZOO_LIST:
        raise RuntimeError("CREMA_ZOO_LIST is not set (tests/test_python_onnx.sh sets it)")
    nets = []
    with open(ZOO_LIST) as f:
        for line in f:
            if line.strip():
                rel, path, upgraded = line.rstrip("\n").split("\t")
                nets.append((rel, path))
    return nets


class ZooNets(unittest.TestCase):
    """Every deploy net crema runs, random weights, batch 1."""

    def test_every_deploy_net(self):
        nets = zoo_nets()
        self.assertGreaterEqual(len(nets), 40, "test_zoo_nets --list-deploy listed only %d nets" % len(nets))
        path = tmp_path("zoo.onnx")
        for rel, proto in nets:
            with self.subTest(net=rel):
                t0 = time.time()
                rng = np.random.default_rng(zlib.crc32(rel.encode()))
                with crema.Net(proto, phase="TEST") as net:
                    feeds = inputs_at_batch(net, 1, rng)
                    randomize(net, rng)
                    export_and_check(self, net, path)
                    n, worst = compare(self, net, feeds, path, rel)
                os.remove(path)
                REPORT.append((rel, n, worst, time.time() - t0))


class GoldenModels(unittest.TestCase):
    """The two pretrained models: ONNX Runtime against crema and against
    BVLC Caffe's own outputs."""

    def run_model(self, case, weights, out_blob):
        d = os.path.join(GOLDEN, "models", case)
        gold = crema.read_caffemodel(os.path.join(d, "golden.caffemodel"))
        t0 = time.time()
        with crema.Net(os.path.join(d, "net.prototxt"), os.path.join(d, weights), phase="TEST") as net:
            feeds = {n: gold["blob/" + n][0].data for n in net.inputs}
            net.forward(**feeds)
            path = tmp_path(case + ".onnx")
            export_and_check(self, net, path)
            n, worst = compare(self, net, feeds, path, case)
            prob = session(path).run([out_blob], feeds)[0]
            os.remove(path)
        caffe = gold["blob/" + out_blob][0].data
        err, why = relative_error(prob, caffe)
        self.assertEqual(why, "")
        self.assertLessEqual(err, RTOL, "%s: ONNX Runtime's %s differs from Caffe's by %.3g" % (case, out_blob, err))
        self.assertEqual(list(prob.reshape(len(prob), -1).argmax(1)), list(caffe.reshape(len(caffe), -1).argmax(1)))
        REPORT.append(("golden/models/" + case, n, worst, time.time() - t0))
        REPORT.append(("golden/models/%s %s vs Caffe" % (case, out_blob), 1, err, 0.0))

    def test_lenet(self):
        self.run_model("lenet_mnist", "lenet_iter_10000.caffemodel", "loss")

    def test_resnet20(self):
        self.run_model("resnet20_cifar", "ResNet_20.caffemodel", "prob")


class GoldenLayers(unittest.TestCase):
    """Each golden layer case in the TEST phase, with its weights and
    inputs: exported and equal to crema, or refused naming the layer."""

    def test_layer_cases(self):
        root = os.path.join(GOLDEN, "layers")
        exported = refused = fixed = 0
        path = tmp_path("layer.onnx")
        for case in sorted(os.listdir(root)):
            if case == "python":
                continue  # a Python layer: crema runs it only from its Python package
            with self.subTest(case=case), in_folder(os.path.join(root, case)):
                gold = crema.read_caffemodel("golden.caffemodel")
                with crema.Net("net.prototxt", phase="TEST") as net:
                    for layer in net.params:
                        for i, b in enumerate(net.params[layer]):
                            b.data[...] = gold[layer][i].data
                    feeds = {}
                    for n in net.inputs:
                        feeds[n] = gold["blob/" + n][0].data
                        net.set_input(n, feeds[n])
                    net.forward()
                    bad = [(name, t) for name, t in zip(net.layer_names, net.layer_types) if t in REFUSED]
                    if not net.outputs:
                        with self.assertRaises(crema.CremaError) as cm:
                            net.export_onnx(path)
                        self.assertIn("has no outputs", str(cm.exception))
                        refused += 1
                        continue
                    if bad:
                        with self.assertRaises(crema.CremaError) as cm:
                            net.export_onnx(path)
                        msg = str(cm.exception)
                        self.assertIn("layer %s (%s)" % bad[0], msg)
                        self.assertEqual(cm.exception.status_name, "unsupported")
                        self.assertFalse(os.path.exists(path), "a refused export left a file")
                        refused += 1
                        continue
                    try:
                        net.export_onnx(path)
                    except crema.CremaError as e:
                        self.assertIn("fixed_batch=True", str(e))
                        net.export_onnx(path, fixed_batch=True)
                        fixed += 1
                    onnx.checker.check_model(path, full_check=True)
                    compare(self, net, feeds, path, "layers/" + case)
                    os.remove(path)
                    exported += 1
        print("golden layer cases: %d exported (%d with a fixed batch), %d refused" % (exported, fixed, refused))
        self.assertGreaterEqual(exported, 80)


class in_folder:
    """Runs a block with the working directory at d (golden cases name their
    files relatively)."""

    def __init__(self, d):
        self.d = d

    def __enter__(self):
        self.old = os.getcwd()
        os.chdir(self.d)

    def __exit__(self, *exc):
        os.chdir(self.old)


def googlenet():
    return os.path.join(CORPUS, "caffe", "models", "bvlc_googlenet", "deploy.prototxt")


class Options(unittest.TestCase):
    """Opsets, the open batch size, the command line."""

    def test_opsets(self):
        rng = np.random.default_rng(13)
        with crema.Net(googlenet(), phase="TEST") as net:
            feeds = inputs_at_batch(net, 1, rng)
            randomize(net, rng)
            for opset in (crema.onnx_export.OPSET_MIN, crema.onnx_export.OPSET_MAX):
                path = tmp_path("opset%d.onnx" % opset)
                export_and_check(self, net, path, opset=opset)
                self.assertEqual(onnx.load(path, load_external_data=False).opset_import[0].version, opset)
                compare(self, net, feeds, path, "googlenet opset %d" % opset)
                os.remove(path)
            for opset in (12, 22, True, "17"):
                with self.assertRaises((crema.CremaError, TypeError)):
                    net.export_onnx(tmp_path("bad.onnx"), opset=opset)

    def test_open_batch(self):
        """Exported at batch 1, run at batch 3: equal to crema at batch 3."""
        rng = np.random.default_rng(3)
        for proto in (googlenet(), os.path.join(CORPUS, "zoo", "zoo_shicai_mobilenet", "mobilenet_v2_deploy.prototxt")):
            with crema.Net(proto, phase="TEST") as net:
                inputs_at_batch(net, 1, rng)
                randomize(net, rng)
                path = tmp_path("batch.onnx")
                export_and_check(self, net, path)
                m = onnx.load(path)
                self.assertEqual(m.graph.input[0].type.tensor_type.shape.dim[0].dim_param, "N")
                feeds = inputs_at_batch(net, 3, rng)
                net.forward()
                compare(self, net, feeds, path, "%s at batch 3" % os.path.basename(proto))
                net.export_onnx(path, fixed_batch=True)
                m = onnx.load(path)
                self.assertEqual(m.graph.input[0].type.tensor_type.shape.dim[0].dim_value, 3)
                os.remove(path)

    def test_dummy_data(self):
        """Constant DummyData tops become initializers; random ones are refused."""
        with crema.Net(os.path.join(GOLDEN, "data", "dummy_data", "net.prototxt"), phase="TEST") as net:
            net.forward()
            path = tmp_path("dummy.onnx")
            export_and_check(self, net, path)
            compare(self, net, {}, path, "dummy_data")
            os.remove(path)
        proto = tmp_path("dummy_random.prototxt")
        with open(proto, "w") as f:
            f.write('layer { name: "d" type: "DummyData" top: "x" dummy_data_param { shape { dim: 2 dim: 3 } '
                    'data_filler { type: "gaussian" } } }\n'
                    'layer { name: "r" type: "ReLU" bottom: "x" top: "y" }\n')
        with crema.Net(proto, phase="TEST") as net:
            with self.assertRaises(crema.CremaError) as cm:
                net.export_onnx(tmp_path("dummy_random.onnx"))
            self.assertIn("layer d (DummyData)", str(cm.exception))
            self.assertIn("gaussian", str(cm.exception))
        os.remove(proto)

    def cli(self, *args):
        return subprocess.run([BIN, "export-onnx"] + list(args), capture_output=True, text=True)

    def test_command_line(self):
        lenet = os.path.join(CORPUS, "caffe", "examples", "mnist", "lenet.prototxt")
        out = tmp_path("cli.onnx")
        r = self.cli("-model", lenet, "-output", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        onnx.checker.check_model(out, full_check=True)
        x = np.random.default_rng(0).uniform(0, 1, (5, 1, 28, 28)).astype(np.float32)
        self.assertEqual(session(out).run(None, {"data": x})[0].shape, (5, 10))
        r = self.cli("-model", lenet, "-output", out, "-input_shape", "data=2,1,28,28", "-fixed_batch", "-opset", "13")
        self.assertEqual(r.returncode, 0, r.stderr)
        m = onnx.load(out)
        self.assertEqual([d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim], [2, 1, 28, 28])
        self.assertEqual(m.opset_import[0].version, 13)
        os.remove(out)
        for args, words in ((["-opset", "12"], "opset"), (["-input_shape", "data=0,1"], "positive"),
                            (["-input_shape", "nothere=1,2"], "no input nothere"), ([], None)):
            full = ["-model", lenet] + (["-output", out] if words else []) + args
            r = self.cli(*full)
            self.assertEqual(r.returncode, 1, "%s: %s" % (full, r.stderr))
            self.assertIn(words or "-output is required", r.stderr)
            self.assertFalse(os.path.exists(out))
        # A layer without an ONNX equivalent: refused by name, nothing written.
        train = os.path.join(CORPUS, "caffe", "examples", "mnist", "lenet_train_test.prototxt")
        r = self.cli("-model", train, "-output", out)
        self.assertEqual(r.returncode, 1)
        self.assertIn("layer mnist (Data)", r.stderr)
        self.assertFalse(os.path.exists(out))


class OldNets(unittest.TestCase):
    """V0 and V1 nets export as they load, upgraded: from Python, and from
    the command line given the old file and the same weights."""

    def test_v0_v1(self):
        up = os.path.join(CORPUS, "upgrade")
        cases = [("V0_before/examples/imagenet/imagenet_deploy.prototxt", 1),
                 ("V1_before_2015/models/bvlc_googlenet/deploy.prototxt", 1),
                 ("V1_before_2015/examples/mnist/lenet.prototxt", 4)]
        for rel, batch in cases:
            with self.subTest(net=rel):
                old = os.path.join(up, rel)
                weights, out = tmp_path("old.caffemodel"), tmp_path("old.onnx")
                rng = np.random.default_rng(zlib.crc32(rel.encode()))
                with crema.Net(old, phase="TEST") as net:
                    inputs_at_batch(net, batch, rng)
                    randomize(net, rng)
                    feeds = {n: net.blobs[n].data.copy() for n in net.inputs}
                    export_and_check(self, net, out)
                    n, worst = compare(self, net, feeds, out, rel)
                    REPORT.append(("upgrade/" + rel, n, worst, 0.0))
                    os.remove(out)
                    net.save(weights)
                    shape = ",".join(str(d) for d in net.blobs[net.inputs[0]].shape)
                    r = subprocess.run([BIN, "export-onnx", "-model", old, "-weights", weights, "-output", out,
                                        "-input_shape", shape], capture_output=True, text=True)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    onnx.checker.check_model(out, full_check=True)
                    compare(self, net, feeds, out, rel + " (command line)")
                for p in (weights, out):
                    os.remove(p)


class Demo(unittest.TestCase):
    """make demo's LeNet on Fashion-MNIST, trained briefly: the accuracy of
    `crema test` on the 10000 test images and ONNX Runtime's on the same
    images (from `crema features`) agree."""

    ITERS = int(os.environ.get("CREMA_ONNX_DEMO_ITERS", "300"))

    def test_demo_accuracy(self):
        data = os.environ.get("FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
        if not os.path.exists(os.path.join(data, "t10k-images-idx3-ubyte.gz")):
            self.fail("Fashion-MNIST is missing from %s (scripts/deps.sh installs dataset-fashion-mnist)" % data)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        work = tmp_path("demo")
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)

        def run(*args):
            r = subprocess.run([BIN] + list(args), capture_output=True, text=True, cwd=work,
                               env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
            self.assertEqual(r.returncode, 0, "%s: %s" % (args, r.stderr[-2000:]))
            return r

        lmdbs = os.environ.get("CREMA_FASHION_LMDB")
        if lmdbs:
            train_db = os.path.join(lmdbs, "fashion_mnist_train_lmdb")
            test_db = os.path.join(lmdbs, "fashion_mnist_test_lmdb")
        else:
            train_db, test_db = os.path.join(work, "train_lmdb"), os.path.join(work, "test_lmdb")
            for db, prefix in ((train_db, "train"), (test_db, "t10k")):
                run("convert-mnist", os.path.join(data, prefix + "-images-idx3-ubyte.gz"),
                    os.path.join(data, prefix + "-labels-idx1-ubyte.gz"), db)
        # The demo's own net, solver settings, and paths, trained ITERS iterations.
        with open(os.path.join(root, "demo", "lenet_train_test.prototxt")) as f:
            net_text = f.read()
        net_text = net_text.replace("build/demo/fashion_train_lmdb", train_db)
        net_text = net_text.replace("build/demo/fashion_test_lmdb", test_db)
        with open(os.path.join(work, "net.prototxt"), "w") as f:
            f.write(net_text)
        with open(os.path.join(root, "demo", "lenet_solver.prototxt")) as f:
            solver = [line for line in f if not line.split(":")[0].strip() in
                      ("net", "max_iter", "snapshot", "snapshot_prefix", "test_interval", "display")]
        solver += ['net: "net.prototxt"\n', "max_iter: %d\n" % self.ITERS, 'snapshot_prefix: "lenet"\n',
                   "test_interval: 100000\n", "display: 0\n"]
        with open(os.path.join(work, "solver.prototxt"), "w") as f:
            f.writelines(solver)
        run("train", "-solver", "solver.prototxt")
        weights = os.path.join(work, "lenet_iter_%d.caffemodel" % self.ITERS)
        r = run("test", "-model", "net.prototxt", "-weights", weights, "-iterations", "200")
        acc_line = [line for line in r.stdout.splitlines() + r.stderr.splitlines()
                    if line.startswith("accuracy = ")]
        self.assertEqual(len(acc_line), 1, r.stderr[-2000:])
        crema_acc = float(acc_line[0].split("=")[1])
        run("features", "-model", "net.prototxt", "-weights", weights, "-features", "data,label",
            "-outputFormat", "npy", "-output", "features")
        images = np.load(os.path.join(work, "features", "data.npy")).reshape(-1, 1, 28, 28).astype(np.float32)
        labels = np.load(os.path.join(work, "features", "label.npy")).reshape(-1)
        self.assertEqual(len(images), 10000)
        out = os.path.join(work, "lenet.onnx")
        run("export-onnx", "-model", os.path.join(root, "demo", "lenet_deploy.prototxt"), "-weights", weights,
            "-output", out)
        onnx.checker.check_model(out, full_check=True)
        prob = session(out).run(["prob"], {"data": images})[0]
        onnx_acc = float((prob.argmax(1) == labels).mean())
        print("demo LeNet after %d iterations: crema test accuracy %.4f, ONNX Runtime %.4f" %
              (self.ITERS, crema_acc, onnx_acc))
        self.assertGreater(onnx_acc, 0.5)
        self.assertAlmostEqual(crema_acc, onnx_acc, delta=0.5e-4)
        shutil.rmtree(work)


def tearDownModule():
    if REPORT:
        print("\nworst relative error per net (max |onnx - crema| / max |crema|, every blob the graph holds):")
        for what, n, worst, secs in REPORT:
            print("  %-72s %4d blobs  %.2e  %5.1fs" % (what, n, worst, secs))


if __name__ == "__main__":
    unittest.main(verbosity=2)
