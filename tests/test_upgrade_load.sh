#!/bin/sh
# Every command that reads a net takes Caffe's V0/V1 files and old solvers,
# as Caffe does: crema time, test, forward, train, features and the
# CaffeOnSpark -train/-features flags, each printing one upgrade notice per
# old file; where a net's data source is not here, the error names the source.
set -u
NAME=upgrade_load
. tests/cli_testing.sh
FM=/usr/share/datasets/fashion-mnist
[ -f "$FM/t10k-images-idx3-ubyte.gz" ] || { echo "skipped: no Fashion-MNIST at $FM"; exit 77; }
OLD=$SHARED/corpus/upgrade
cd "$TMP" || exit 1
"$BIN" convert-mnist "$FM/t10k-images-idx3-ubyte.gz" "$FM/t10k-labels-idx1-ubyte.gz" lmdb >/dev/null 2>&1 ||
    { echo "FAIL: convert-mnist"; exit 1; }
# notices FILE N: stderr holds N upgrade notices, each naming FILE
notices() {
    n=$(grep -c "crema: note: .*$1.* upgraded it on load" "$TMP/err")
    if [ "$n" -eq "$2" ]; then ok; else fail "expected $2 upgrade notice(s) naming $1, got $n: $(head -5 "$TMP/err")"; fi
}

# the net of the bug report
expect_rc 0 "$BIN" time -model "$OLD/V1_before_2015/examples/siamese/mnist_siamese.prototxt" -iterations 1
notices mnist_siamese.prototxt 1
expect_rc 0 "$BIN" time -model "$OLD/V0_before/examples/lenet/lenet.prototxt" -iterations 1
notices lenet.prototxt 1

# a V1 train/test net on data that is here, and an old solver
cat >v1.prototxt <<'NET'
name: "v1"
layers { name: "data" type: DATA top: "data" top: "label"
  data_param { source: "lmdb" backend: LMDB batch_size: 8 } transform_param { scale: 0.00390625 } }
layers { name: "ip" type: INNER_PRODUCT bottom: "data" top: "ip" blobs_lr: 1 blobs_lr: 2
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "ip" bottom: "label" top: "loss" }
layers { name: "acc" type: ACCURACY bottom: "ip" bottom: "label" top: "acc" include { phase: TEST } }
NET
cat >old_solver.prototxt <<'SOLVER'
net: "v1.prototxt"
solver_type: SGD
base_lr: 0.01
lr_policy: "fixed"
max_iter: 2
snapshot_prefix: "snap"
random_seed: 1
SOLVER
expect_rc 0 "$BIN" train -solver old_solver.prototxt
notices v1.prototxt 1
notices old_solver.prototxt 1
expect_rc 0 "$BIN" test -model v1.prototxt -weights snap_iter_2.caffemodel -iterations 2
notices v1.prototxt 1
has "$TMP/out" "acc"
expect_rc 0 "$BIN" features -model v1.prototxt -weights snap_iter_2.caffemodel -features ip -iterations 1 \
    -output f.json
notices v1.prototxt 1
expect_rc 0 "$BIN" forward -model "$OLD/V1_before_2015/examples/mnist/lenet.prototxt" \
    -weights "$SHARED/golden/models/lenet_mnist/lenet_iter_10000.caffemodel" -output fwd
notices lenet.prototxt 1
if [ -f fwd/prob.npy ]; then ok; else fail "forward wrote no fwd/prob.npy: $(ls fwd 2>&1)"; fi
expect_rc 0 "$BIN" -train -conf old_solver.prototxt -model cos.caffemodel
notices old_solver.prototxt 1
expect_rc 0 "$BIN" -features ip -conf old_solver.prototxt -model cos.caffemodel -output cos.json
notices v1.prototxt 1
if [ "$(wc -l <cos.json)" -gt 0 ]; then ok; else fail "crema -features wrote nothing to cos.json"; fi

# where the example's data is not here, the error names the source
expect_rc 1 "$BIN" time -model "$OLD/V1_before_2015/examples/mnist/lenet_train_test.prototxt" -iterations 1
has "$TMP/err" "data_param.source: examples/mnist/mnist_train_lmdb"
if grep "^crema time" "$TMP/err" | grep -q "format"; then fail "the error speaks of the format: $(cat "$TMP/err")"
else ok; fi
sed "s|v1.prototxt|$OLD/V1_before_2015/examples/mnist/lenet_train_test.prototxt|" old_solver.prototxt >corpus_solver.prototxt
expect_rc 1 "$BIN" train -solver corpus_solver.prototxt
has "$TMP/err" "mnist_train_lmdb"

echo "$checks checks, $fails failed"
cd / && rm -rf "$TMP"
[ "$fails" -eq 0 ]
