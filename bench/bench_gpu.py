#!/usr/bin/env python3
"""crema on a GPU beside PyTorch eager on the same GPU, in the same run.

One training iteration = forward + backward + SGD momentum update, constant
input, as ../shared/GPU.md's yardstick. crema's side is build/bench/bench_gpu
(median of 5 timed loops, min and max); PyTorch's side is timed here the same
way, on the same nets layer for layer (Caffe's pooling rounds up: ceil_mode;
Caffe's LRN divides alpha by the window as torch's LocalResponseNorm does).

    python3 bench/bench_gpu.py [--precision fp32,tf32] [--nets lenet,...]

fp32: TF32 off everywhere (what Caffe computes); tf32: TF32 on for
convolutions and matrix products; bf16: autocast to bfloat16 with
channels_last (PyTorch side; crema's side only where it supports it).
Prints one table; each ratio is crema's median over PyTorch's median.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

LOOPS = 5
ITERS = {"lenet": 200, "cifar10_quick": 200, "caffenet": 10, "resnet50": 10}
BATCH = {"lenet": 64, "cifar10_quick": 100, "caffenet": 256, "resnet50": 64}


def torch_nets(torch):
    nn = torch.nn

    class LeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(
                nn.Conv2d(1, 20, 5), nn.MaxPool2d(2, 2, ceil_mode=True),
                nn.Conv2d(20, 50, 5), nn.MaxPool2d(2, 2, ceil_mode=True),
                nn.Flatten(), nn.Linear(800, 500), nn.ReLU(inplace=True), nn.Linear(500, 10))

        def forward(self, x):
            return self.f(x)

    class Cifar10Quick(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(
                nn.Conv2d(3, 32, 5, padding=2), nn.MaxPool2d(3, 2, ceil_mode=True), nn.ReLU(inplace=True),
                nn.Conv2d(32, 32, 5, padding=2), nn.ReLU(inplace=True), nn.AvgPool2d(3, 2, ceil_mode=True),
                nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(inplace=True), nn.AvgPool2d(3, 2, ceil_mode=True),
                nn.Flatten(), nn.Linear(64 * 4 * 4, 64), nn.Linear(64, 10))

        def forward(self, x):
            return self.f(x)

    class CaffeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(
                nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, ceil_mode=True),
                nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0),
                nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, ceil_mode=True), nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0),
                nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(inplace=True),
                nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, ceil_mode=True), nn.Flatten(),
                nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
                nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(4096, 1000))

        def forward(self, x):
            return self.f(x)

    class Bottleneck(nn.Module):
        # Caffe's ResNet-50 (the MSRA deploy/train nets): the stride is on the
        # first 1x1 convolution of a block; BatchNorm+Scale is BatchNorm2d.
        def __init__(self, cin, mid, cout, stride):
            super().__init__()
            self.a = nn.Sequential(nn.Conv2d(cin, mid, 1, stride=stride, bias=False), nn.BatchNorm2d(mid),
                                   nn.ReLU(inplace=True),
                                   nn.Conv2d(mid, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid),
                                   nn.ReLU(inplace=True),
                                   nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
            self.s = None
            if stride != 1 or cin != cout:
                self.s = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
            self.r = nn.ReLU(inplace=True)

        def forward(self, x):
            return self.r(self.a(x) + (self.s(x) if self.s is not None else x))

    class ResNet50(nn.Module):
        def __init__(self):
            super().__init__()
            layers = [nn.Conv2d(3, 64, 7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                      nn.MaxPool2d(3, 2, ceil_mode=True)]
            cin = 64
            for mid, n, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
                for i in range(n):
                    layers.append(Bottleneck(cin, mid, mid * 4, stride if i == 0 else 1))
                    cin = mid * 4
            layers += [nn.AvgPool2d(7, 1), nn.Flatten(), nn.Linear(2048, 1000)]
            self.f = nn.Sequential(*layers)

        def forward(self, x):
            return self.f(x)

    return {"lenet": (LeNet, (1, 28, 28), 10), "cifar10_quick": (Cifar10Quick, (3, 32, 32), 10),
            "caffenet": (CaffeNet, (3, 227, 227), 1000), "resnet50": (ResNet50, (3, 224, 224), 1000)}


def time_torch(torch, name, precision):
    make, shape, classes = torch_nets(torch)[name]
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    tf32 = precision in ("tf32", "bf16")
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    model = make().to(dev)
    x = torch.full((BATCH[name],) + shape, 0.5, device=dev)
    y = torch.zeros(BATCH[name], dtype=torch.long, device=dev)
    if precision == "bf16":
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=False)
        if precision == "bf16":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = loss_fn(model(x), y)
        else:
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(LOOPS):
        t0 = time.perf_counter()
        for _ in range(ITERS[name]):
            step()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3 / ITERS[name])
    peak = torch.cuda.max_memory_allocated() / 2**20
    del model, opt
    torch.cuda.empty_cache()
    return statistics.median(times), min(times), max(times), peak


def time_crema(binary, names, precision):
    out = {}
    r = subprocess.run([binary, "-precision", precision] + names, capture_output=True, text=True)
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) >= 4 and f[0] == "crema":
            if f[3] == "error":
                out[f[1]] = " ".join(f[4:])
            else:
                out[f[1]] = (float(f[3]), float(f[4]), float(f[5]), float(f[6]))
    if r.returncode not in (0, 1):
        sys.stderr.write(r.stderr)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--precision", default="fp32,tf32")
    ap.add_argument("--nets", default="lenet,cifar10_quick,caffenet")
    ap.add_argument("--binary", default=os.environ.get("CREMA_BENCH_GPU", "build/bench/bench_gpu"))
    a = ap.parse_args()
    import torch
    if not torch.cuda.is_available():
        print("bench_gpu.py: no CUDA device for PyTorch")
        return 77
    names = a.nets.split(",")
    print("GPU: %s; PyTorch %s, cuDNN %s" % (torch.cuda.get_device_name(0), torch.__version__,
                                             torch.backends.cudnn.version()))
    print("| net (batch) | precision | crema ms/iter (min-max) | PyTorch ms/iter (min-max) | crema/PyTorch |"
          " crema peak MiB | PyTorch peak MiB |")
    print("|---|---|---|---|---|---|---|")
    for prec in a.precision.split(","):
        crema = time_crema(a.binary, names, prec)
        for n in names:
            t = time_torch(torch, n, prec)
            c = crema.get(n, "not run")
            if isinstance(c, tuple):
                cs = "%.3f (%.3f-%.3f)" % c[:3]
                ratio = "%.2f" % (c[0] / t[0])
                cm = "%.0f" % c[3]
            else:
                cs, ratio, cm = c, "-", "-"
            print("| %s (%d) | %s | %s | %.3f (%.3f-%.3f) | %s | %s | %.0f |" % (
                n, BATCH[n], prec, cs, t[0], t[1], t[2], ratio, cm, t[3]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
