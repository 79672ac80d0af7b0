#!/bin/sh
# make demo: Fashion-MNIST to LMDBs, LeNet trained with Caffe's MNIST
# solver settings on 2 data-parallel ranks (batch 32 per rank x 2 = Caffe's
# 64; RANKS=1 trains one process, with half the batch), then the final test
# accuracy and the saved model. Run from the repository root after the build.
set -eu
CREMA=${CREMA:-build/bin/crema}
DATA=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
OUT=build/demo
mkdir -p "$OUT"
if [ ! -d "$OUT/fashion_train_lmdb" ]; then
    "$CREMA" convert-mnist "$DATA/train-images-idx3-ubyte.gz" "$DATA/train-labels-idx1-ubyte.gz" \
        "$OUT/fashion_train_lmdb.part"
    mv "$OUT/fashion_train_lmdb.part" "$OUT/fashion_train_lmdb"
fi
if [ ! -d "$OUT/fashion_test_lmdb" ]; then
    "$CREMA" convert-mnist "$DATA/t10k-images-idx3-ubyte.gz" "$DATA/t10k-labels-idx1-ubyte.gz" \
        "$OUT/fashion_test_lmdb.part"
    mv "$OUT/fashion_test_lmdb.part" "$OUT/fashion_test_lmdb"
fi
start=$(date +%s)
RANKS=${RANKS:-2}
OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} "$CREMA" train -solver demo/lenet_solver.prototxt \
    -clusterSize "$RANKS" "$@" 2>&1 |
    tee "$OUT/train.log" | grep -E "Testing net|Test net output|Iteration [0-9]+ \(|Snapshotting to|Optimization"
end=$(date +%s)
acc=$(grep "Test net output #0: accuracy" "$OUT/train.log" | tail -1 | sed 's/.*accuracy = //')
model=$(grep "Snapshotting to" "$OUT/train.log" | tail -1 | sed 's/.* file //')
echo "demo: $RANKS ranks, final test accuracy $acc after $((end - start)) s; model saved to $model (log: $OUT/train.log)"
