#!/bin/sh
# Edge cases of the command line, each a clear error rather than a surprise:
# a negative -iterations, -clusterSize far past this machine's cores,
# -weights that are a device or fit no layer; and a multi-rank job's log
# says "Optimization Done." once, from rank 0.
set -u
NAME=cli_edges
. tests/cli_testing.sh
fashion_lmdb
cat >net.prototxt <<'NET'
name: "edges"
layer { name: "data" type: "Data" top: "data" top: "label"
  transform_param { scale: 0.00390625 } data_param { source: "lmdb" batch_size: 4 backend: LMDB } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
NET
cat >solver.prototxt <<'SOLVER'
net: "net.prototxt"
base_lr: 0.01
lr_policy: "fixed"
max_iter: 3
snapshot_prefix: "snap"
random_seed: 1
SOLVER

# -iterations: negative is an error, not "the solver's max_iter"
expect_rc 1 "$BIN" train -solver solver.prototxt -iterations -5
has "$TMP/err" "iterations"
expect_rc 1 "$BIN" train -solver solver.prototxt -iterations 99999999999
has "$TMP/err" "iterations"
expect_rc 1 "$BIN" time -model net.prototxt -iterations -5
has "$TMP/err" "iterations must be positive"
expect_rc 1 "$BIN" test -model net.prototxt -weights x -iterations -5
has "$TMP/err" "iterations must be positive"

# -clusterSize far beyond the cores: refused before a rank starts
cores=$(nproc)
many=$((4 * cores + 1))
start=$(date +%s)
expect_rc 1 "$BIN" train -solver solver.prototxt -clusterSize $many
has "$TMP/err" "cores"
expect_rc 1 "$BIN" -train -conf solver.prototxt -clusterSize $many -model m.caffemodel
has "$TMP/err" "cores"
[ $(($(date +%s) - start)) -lt 60 ] && ok || fail "refusing -clusterSize $many took $(($(date +%s) - start)) s"

# a multi-rank job: "Optimization Done." once, from rank 0
expect_rc 0 "$BIN" train -solver solver.prototxt -clusterSize 2 -dist_timeout 20
n=$(grep -c "^Optimization Done.$" "$TMP/err")
[ "$n" -eq 1 ] && ok || fail "the log of -clusterSize 2 says 'Optimization Done.' $n times, expected once (rank 0)"

# weights: a device is refused before it is read; a file fitting no layer fails
start=$(date +%s)
expect_rc 1 timeout 60 "$BIN" test -model net.prototxt -weights /dev/zero -iterations 1
has "$TMP/err" "character device"
[ $(($(date +%s) - start)) -lt 30 ] && ok || fail "-weights /dev/zero took $(($(date +%s) - start)) s to refuse"
: >empty.caffemodel
expect_rc 1 "$BIN" test -model net.prototxt -weights empty.caffemodel -iterations 1
has "$TMP/err" "no layer of net edges got weights"
expect_rc 0 "$BIN" test -model net.prototxt -weights empty.caffemodel -iterations 1 -allow_unmatched_weights
has "$TMP/err" "1 of the 1 layer(s) with weights of net edges got none"

echo "$checks checks, $fails failed"
cd / && rm -rf "$TMP"
[ "$fails" -eq 0 ]
