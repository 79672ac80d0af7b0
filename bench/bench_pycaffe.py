#!/usr/bin/env python3
"""What pycaffe's interface costs over crema.Net: the same net, the same
input, forward() through crema.Net and through caffe.Net, interleaved (one
call of each in turn, so that load on the machine falls on both), and the
time `import caffe` takes in a fresh interpreter beside `import crema`.

    CREMA_LIBRARY=build/lib/libcrema.so PYTHONPATH=python \\
        OPENBLAS_NUM_THREADS=1 python3 bench/bench_pycaffe.py [--reps 200]

(or from a venv with the package installed). Nets: the golden LeNet (batch
10), ResNet-20 (batch 3) and SqueezeNet v1.1 (batch 10, 227 x 227) from
../shared. Prints per net the median and the 10th-90th percentile of each
side's forward() in milliseconds and the median difference caffe - crema.
caffe.Net's forward returns views of the output blobs, crema.Net's copies
(what each package's users get)."""
import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("CREMA_SHARED") or os.path.join(ROOT, "..", "shared")


def import_time(module, reps):
    """Median wall time of `python -c "import module"`, minus that of
    `python -c "pass"`, in milliseconds."""
    def run(code):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=os.environ)
        return time.perf_counter() - t
    base, mod = [], []
    for _ in range(reps):
        base.append(run("pass"))
        mod.append(run("import %s" % module))
    return (statistics.median(mod) - statistics.median(base)) * 1e3


def nets():
    g = os.path.join(SHARED, "golden", "models")
    sq = os.path.join(SHARED, "corpus", "zoo", "zoo_squeezenet", "SqueezeNet_v1.1", "deploy.prototxt")
    return [("lenet", os.path.join(g, "lenet_mnist", "net.prototxt"),
             os.path.join(g, "lenet_mnist", "lenet_iter_10000.caffemodel")),
            ("resnet20", os.path.join(g, "resnet20_cifar", "net.prototxt"),
             os.path.join(g, "resnet20_cifar", "ResNet_20.caffemodel")),
            ("squeezenet", sq, None)]


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--import-reps", type=int, default=15)
    args = ap.parse_args()
    import crema
    import caffe
    print("import (fresh interpreter, median of %d, minus python's own start):" % args.import_reps)
    print("  import crema  %7.1f ms" % import_time("crema", args.import_reps))
    print("  import caffe  %7.1f ms" % import_time("caffe", args.import_reps))
    print("forward() per call, ms: median [p10, p90]; %d interleaved calls each" % args.reps)
    print("  %-11s %-26s %-26s %s" % ("net", "crema.Net", "caffe.Net", "caffe - crema (median)"))
    for name, proto, weights in nets():
        cn = crema.Net(proto, weights, phase="TEST")
        pn = caffe.Net(proto, caffe.TEST, weights=weights)
        inp = cn.inputs[0]
        x = np.random.RandomState(0).uniform(size=cn.blobs[inp].shape).astype(np.float32)
        cn.blobs[inp].data[...] = x
        pn.blobs[inp].data[...] = x
        reps = args.reps if name != "squeezenet" else max(args.reps // 10, 5)
        tc, tp = [], []
        for i in range(reps + 2):
            t0 = time.perf_counter()
            oc = cn.forward()
            t1 = time.perf_counter()
            op = pn.forward()
            t2 = time.perf_counter()
            if i >= 2:  # warm-up calls not counted
                tc.append((t1 - t0) * 1e3)
                tp.append((t2 - t1) * 1e3)
        out = pn.outputs[0]
        assert np.array_equal(oc[out], op[out]), name
        print("  %-11s %8.3f [%7.3f, %7.3f]  %8.3f [%7.3f, %7.3f]  %+.3f ms (%+.1f%%)" % (
            name, statistics.median(tc), pct(tc, .1), pct(tc, .9), statistics.median(tp), pct(tp, .1),
            pct(tp, .9), statistics.median(tp) - statistics.median(tc),
            100 * (statistics.median(tp) / statistics.median(tc) - 1)))


if __name__ == "__main__":
    main()
