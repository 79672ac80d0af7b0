#!/usr/bin/env python3
"""crema on the CPU beside PyTorch on the CPU, in the same run.

One training iteration = forward + backward + SGD momentum update with
weight decay, constant input, on Caffe's benchmark nets (../shared/bench;
PyTorch's are bench_gpu.py's torch_nets, the same nets layer for layer).
For each thread count, each net runs in a fresh process per engine (so a
process's peak RSS is that net's), crema and PyTorch alternating, over
several rounds; the 2048^3 sgemm yardstick (OpenBLAS on as many threads)
runs before each pair. Every time is a median: per process over its timed
loops, then over the rounds; the spread is the range over rounds.

    python3 bench/bench_cpu.py [--threads 1,2] [--nets lenet,cifar10_quick,caffenet]
                               [--rounds 3] [--train ITERS] [--accuracy] [--layers]

The bound is the net's convolution and inner-product work (bench_net's
count: 2 FLOPs per multiply-add, forward and each gradient) at the sgemm
rate; "of bound" is bound / crema's time. On a shared host the sgemm
yardstick and the nets share the cores with other tenants, each at its own
moment: "at best sgemm" is the same fraction with the bound taken at the
run's fastest sgemm, the machine's rate when it was least disturbed (a
lower, more conservative figure than the median's). --train: LeNet training on
Fashion-MNIST (build/bench/bench_train, LMDB Data layer, batch 64) at each
thread count; --accuracy: the same for 9,980 + 20 iterations and the test
accuracy after them (the demo's 10,000 iterations). --layers: only the
convolution layers, each of crema's engines (build/bench/bench_conv) beside
PyTorch's convolution (oneDNN), forward and backward. bench/peer.sh runs it
with everything in place.
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

BATCH = {"lenet": 64, "cifar10_quick": 100, "caffenet": 256}
# per process: iterations per timed loop, timed loops, warm-up iterations
PLAN = {"lenet": (50, 5, 5), "cifar10_quick": (10, 5, 2), "caffenet": (1, 3, 1)}


def torch_child(name, threads):
    """Times PyTorch in this process; prints one line for the parent."""
    rss0 = rss_mib()
    import torch
    from bench_gpu import torch_nets
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    rss_torch = rss_mib()
    make, shape, classes = torch_nets(torch)[name]
    model = make()
    x = torch.full((BATCH[name],) + shape, 0.5)
    y = torch.zeros(BATCH[name], dtype=torch.long)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    iters, loops, warmup = PLAN[name]
    for _ in range(warmup):
        step()
    times = []
    for _ in range(loops):
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        times.append((time.perf_counter() - t0) * 1e3 / iters)
    peak = peak_rss_mib()
    print("torch %s %d %.4f %.4f %.4f %.1f %.1f %.1f" % (name, threads, statistics.median(times), min(times),
                                                        max(times), peak, rss0, rss_torch), flush=True)


# bench_conv's shapes: name -> (batch, groups, in, out, h, w, kernel, pad, stride)
CONV_SHAPES = {
    "lenet.conv1": (64, 1, 1, 20, 28, 28, 5, 0, 1), "lenet.conv2": (64, 1, 20, 50, 12, 12, 5, 0, 1),
    "cifar10_quick.conv1": (100, 1, 3, 32, 32, 32, 5, 2, 1),
    "cifar10_quick.conv2": (100, 1, 32, 32, 16, 16, 5, 2, 1),
    "cifar10_quick.conv3": (100, 1, 32, 64, 8, 8, 5, 2, 1),
    "caffenet.conv1": (32, 1, 3, 96, 227, 227, 11, 0, 4), "caffenet.conv2": (32, 2, 96, 256, 27, 27, 5, 2, 1),
    "caffenet.conv3": (32, 1, 256, 384, 13, 13, 3, 1, 1), "caffenet.conv4": (32, 2, 384, 384, 13, 13, 3, 1, 1),
    "caffenet.conv5": (32, 2, 384, 256, 13, 13, 3, 1, 1),
}


def torch_conv_child(threads, reps):
    """PyTorch's convolution (oneDNN) on bench_conv's shapes: forward, then
    the input and weight gradients of one backward, medians of reps."""
    import torch
    torch.set_num_threads(threads)
    for name, (n, g, cin, cout, h, w, k, pad, stride) in CONV_SHAPES.items():
        conv = torch.nn.Conv2d(cin, cout, k, stride=stride, padding=pad, groups=g)
        x = torch.rand(n, cin, h, w, requires_grad=True)
        tf, tb = [], []
        for r in range(reps + 1):
            t0 = time.perf_counter()
            y = conv(x)
            t1 = time.perf_counter()
            y.backward(y.detach())
            t2 = time.perf_counter()
            if r:
                tf.append((t1 - t0) * 1e3)
                tb.append((t2 - t1) * 1e3)
            x.grad = None
            conv.zero_grad()
        print("torchconv %s %d %.4f %.4f" % (name, threads, statistics.median(tf), statistics.median(tb)), flush=True)


def layers_table(binary, threads, reps):
    crema, torch_t = {}, {}
    for t in threads:
        for line in run([binary, "-threads", str(t), "-reps", str(reps)]).splitlines():
            f = line.split()
            if f[:1] == ["conv"] and len(f) >= 8 and f[4] != "error":
                crema[(f[1], f[2], t)] = (float(f[4]), float(f[5]), float(f[6]), float(f[7]))
        out = run([sys.executable, os.path.abspath(__file__), "--torch-conv-child", str(t), str(reps)])
        for line in out.splitlines():
            f = line.split()
            if f[:1] == ["torchconv"]:
                torch_t[(f[1], t)] = (float(f[3]), float(f[4]))
    engines = sorted({k[1] for k in crema}, key=lambda e: ("avx512", "avx2", "blas").index(e))
    print("| layer (batch) | threads | " + " | ".join(
        "%s fwd / data / weights ms (GFLOP/s per pass)" % e for e in engines) + " | PyTorch fwd / backward ms |")
    print("|---|---|" + "---|" * len(engines) + "---|")
    for name, shape in CONV_SHAPES.items():
        for t in threads:
            cells = []
            for e in engines:
                c = crema.get((name, e, t))
                cells.append("%.2f / %.2f / %.2f (%.0f / %.0f / %.0f)" % (
                    c[0], c[1], c[2], c[3] / c[0] * 1e3, c[3] / c[1] * 1e3, c[3] / c[2] * 1e3) if c else "-")
            p = torch_t.get((name, t))
            print("| %s (%d) | %d | %s | %s |" % (name, shape[0], t, " | ".join(cells),
                                                  "%.2f / %.2f" % p if p else "-"), flush=True)


def peak_rss_mib():
    """VmHWM: this process's own high-water mark (ru_maxrss carries the parent's across fork and exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.stderr.write("bench_cpu.py: %s failed (%d):\n%s%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
    return r.stdout


def sgemm_child(binary, threads):
    """The yardstick in a process of its own (its buffers stay out of the nets' RSS)."""
    for line in run([binary, "-threads", str(threads), "-sgemm"]).splitlines():
        f = line.split()
        if f[:1] == ["sgemm"]:
            return float(f[2])
    return None


def crema_child(binary, name, threads):
    iters, loops, warmup = PLAN[name]
    cmd = [binary, "-threads", str(threads), "-iters", str(iters), "-loops", str(loops), "-warmup", str(warmup)]
    for line in run(cmd + [name]).splitlines():
        f = line.split()
        if f[:1] == ["crema"] and len(f) >= 12:
            return {"ms": float(f[3]), "gflop": float(f[6]), "peak": float(f[7]), "rss0": float(f[8]),
                    "layout": float(f[9]), "faults": float(f[10])}
    return None


def torch_run(name, threads):
    out = run([sys.executable, os.path.abspath(__file__), "--torch-child", name, str(threads)],
              env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    for line in out.splitlines():
        f = line.split()
        if f[:1] == ["torch"] and len(f) >= 9:
            return {"ms": float(f[3]), "peak": float(f[6]), "rss0": float(f[7]), "rss_torch": float(f[8])}
    return None


def spread(v):
    return "%.3g-%.3g" % (min(v), max(v)) if len(v) > 1 else "-"


def cpu_flags():
    flags = set()
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
                elif line.startswith("model name") and model == "?":
                    model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    simd = [x for x in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16")
            if x in flags]
    return model, simd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--nets", default="lenet,cifar10_quick,caffenet")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--train", type=int, default=2000, help="LeNet training iterations per thread count (0: none)")
    ap.add_argument("--accuracy", action="store_true")
    ap.add_argument("--binary", default="build/bench/bench_cpu")
    ap.add_argument("--train-binary", default="build/bench/bench_train")
    ap.add_argument("--layers", action="store_true",
                    help="only the convolution layers: crema's engines (build/bench/bench_conv) beside PyTorch's")
    ap.add_argument("--conv-binary", default="build/bench/bench_conv")
    ap.add_argument("--torch-child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--torch-conv-child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.torch_child:
        torch_child(a.torch_child[0], int(a.torch_child[1]))
        return 0
    if a.torch_conv_child:
        torch_conv_child(int(a.torch_conv_child[0]), int(a.torch_conv_child[1]))
        return 0
    try:
        import torch
    except ImportError:
        print("bench_cpu.py: no PyTorch for %s (bench/peer.sh installs Debian's python3-torch)" % sys.executable)
        return 77
    threads = [int(t) for t in a.threads.split(",")]
    nets = a.nets.split(",")
    model, simd = cpu_flags()
    print("CPU: %s, %d online; SIMD flags: %s" % (model, os.cpu_count(), " ".join(simd)))
    print("PyTorch %s (oneDNN %s); load average at start: %s" % (
        torch.__version__, torch.backends.mkldnn.is_available() and "on" or "off",
        " ".join("%.2f" % x for x in os.getloadavg())), flush=True)
    if a.layers:
        layers_table(a.conv_binary, threads, 5)
        return 0
    crema = {}  # (net, t) -> list of results
    torch_r = {}
    sgemm = {t: [] for t in threads}
    for r in range(a.rounds):
        for n in nets:
            for t in threads:
                g = sgemm_child(a.binary, t)
                if g:
                    sgemm[t].append(g)
                order = ("crema", "torch") if (r + threads.index(t)) % 2 == 0 else ("torch", "crema")
                for who in order:
                    if who == "crema":
                        res = crema_child(a.binary, n, t)
                        if res:
                            crema.setdefault((n, t), []).append(res)
                    else:
                        res = torch_run(n, t)
                        if res:
                            torch_r.setdefault((n, t), []).append(res)
        print("round %d of %d done; load average %s" % (r + 1, a.rounds,
                                                       " ".join("%.2f" % x for x in os.getloadavg())), flush=True)
    print()
    print("| net (batch) | threads | crema ms/iter (range) | PyTorch ms/iter (range) | crema / PyTorch |"
          " sgemm GFLOP/s (range) | bound ms | of bound | of bound at best sgemm |"
          " crema peak RSS MiB (net; Caffe's layout) | PyTorch peak RSS MiB (net) | crema page faults/iter |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in nets:
        for t in threads:
            c, p = crema.get((n, t), []), torch_r.get((n, t), [])
            g = statistics.median(sgemm[t]) if sgemm[t] else float("nan")
            cm = statistics.median([x["ms"] for x in c]) if c else float("nan")
            pm = statistics.median([x["ms"] for x in p]) if p else float("nan")
            bound = c[0]["gflop"] / g * 1e3 if c else float("nan")
            best = c[0]["gflop"] / max(sgemm[t]) * 1e3 if c and sgemm[t] else float("nan")
            cpeak = max(x["peak"] for x in c) if c else float("nan")
            cnet = max(x["peak"] - x["rss0"] for x in c) if c else float("nan")
            layout = c[0]["layout"] if c else float("nan")
            ppeak = max(x["peak"] for x in p) if p else float("nan")
            pnet = max(x["peak"] - x["rss_torch"] for x in p) if p else float("nan")
            faults = max(x["faults"] for x in c) if c else float("nan")
            print("| %s (%d) | %d | %.3f (%s) | %.3f (%s) | %.2f | %.0f (%s) | %.3f | %.0f%% | %.0f%% |"
                  " %.0f (%.0f; %.0f) | %.0f (%.0f) | %.2f |" % (
                      n, BATCH[n], t, cm, spread([x["ms"] for x in c]), pm, spread([x["ms"] for x in p]),
                      cm / pm, g, spread(sgemm[t]), bound, 100 * bound / cm, 100 * best / cm, cpeak, cnet, layout,
                      ppeak, pnet, faults), flush=True)
    print("\nmedians over %d rounds; bound = the net's conv/IP FLOPs at the median sgemm rate on as many threads;"
          " of bound = bound / crema's time; at best sgemm: the same with the bound at the run's fastest sgemm."
          " RSS: peak of the process (net: minus the RSS before the net was built; PyTorch: after importing"
          " torch)." % a.rounds)
    if a.train > 0 or a.accuracy:
        print()
        for t in threads:
            iters = 9980 if a.accuracy else a.train
            cmd = [a.train_binary, "-threads", str(t)] + (["-test"] if a.accuracy else []) + [str(iters)]
            out = run(cmd)
            for line in out.splitlines():
                print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
