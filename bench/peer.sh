#!/bin/sh
# The CPU peer benchmark in one command: builds crema's benchmarks, installs
# Debian's python3-torch when the system Python lacks it, makes the
# Fashion-MNIST LMDBs for the training figure, then runs bench/bench_cpu.py
# (crema and PyTorch side by side, the sgemm yardstick, LeNet training).
# usage: sh bench/peer.sh [bench_cpu.py options]   (from the repository root)
set -eu
BUILD=${BUILD:-build}
PY=${PEER_PYTHON:-/usr/bin/python3}
make --no-print-directory all >/dev/null
make --no-print-directory -C "$BUILD" benches >/dev/null
if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "peer: installing python3-torch (Debian's PyTorch) for $PY"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-torch >/dev/null
fi
DATA=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
OUT=$BUILD/demo
mkdir -p "$OUT"
for pair in train:train t10k:test; do
    src=${pair%%:*}
    dst=${pair##*:}
    if [ ! -d "$OUT/fashion_${dst}_lmdb" ]; then
        "$BUILD/bin/crema" convert-mnist "$DATA/$src-images-idx3-ubyte.gz" "$DATA/$src-labels-idx1-ubyte.gz" \
            "$OUT/fashion_${dst}_lmdb.part" >/dev/null
        mv "$OUT/fashion_${dst}_lmdb.part" "$OUT/fashion_${dst}_lmdb"
    fi
done
exec "$PY" bench/bench_cpu.py --binary "$BUILD/bench/bench_cpu" --train-binary "$BUILD/bench/bench_train" "$@"
