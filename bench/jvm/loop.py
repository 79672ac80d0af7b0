"""crema.spark's rank training loop without Spark (bench/bench_spark_jvm.sh):
crema.spark's own LMDB feeder (a reader net, ctypes) into the MemoryData
layer, one solver step.
    python loop.py SOLVER LMDB ITERS"""
import sys
import time

import crema
from crema.spark.rank import LmdbFeeder
from crema.spark.sources import FeedSpec

solver, lmdb, iters = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = crema.Solver(solver)
f = LmdbFeeder(FeedSpec("lmdb", "data", 64, path=lmdb, store=None,
                        transform="scale: 0.00390625\n"), 0, 1, "TRAIN", ".")
for _ in range(10):
    f.feed(s.net, 1)
    s.step(1)
t0 = time.time()
for _ in range(iters):
    f.feed(s.net, 1)
    s.step(1)
print("loop: %d images in %.2f s" % (iters * 64, time.time() - t0))
