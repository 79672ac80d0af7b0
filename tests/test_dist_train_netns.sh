#!/bin/sh
# One training rank in each of two network namespaces joined by a veth pair
# (10.98.0.1 and 10.98.0.2, inside the namespaces only), over TCP: a short
# LeNet run finishes and rank 0 writes the model. Exits 77 (ctest: skipped)
# where namespaces cannot be made, e.g. not root.
set -u
BIN=${CREMA_BIN:-build/bin/crema}
TMP=${CREMA_TMP:-build/tmp}/dist_netns.$$
DATA=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
. "$(dirname "$0")/netns_testing.sh"

netns_require
[ -f "$DATA/t10k-images-idx3-ubyte.gz" ] || skip "no Fashion-MNIST at $DATA"
[ -x "$BIN" ] || { echo "FAIL: $BIN not built"; exit 1; }
rm -rf "$TMP"
mkdir -p "$TMP"
TMP=$(cd "$TMP" && pwd)
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

netns_setup train ctv 10.98.0

"$BIN" convert-mnist "$DATA/t10k-images-idx3-ubyte.gz" "$DATA/t10k-labels-idx1-ubyte.gz" "$TMP/lmdb" \
    >"$TMP/convert.log" 2>&1 || { echo "FAIL: convert-mnist: $(tail -1 "$TMP/convert.log")"; exit 1; }
sed -e "s|build/demo/fashion_train_lmdb|$TMP/lmdb|; s|build/demo/fashion_test_lmdb|$TMP/lmdb|" \
    demo/lenet_train_test.prototxt >"$TMP/net.prototxt"
cat >"$TMP/solver.prototxt" <<EOF
net: "$TMP/net.prototxt"
test_iter: 4
test_interval: 20
base_lr: 0.01
momentum: 0.9
lr_policy: "fixed"
display: 10
max_iter: 20
snapshot_prefix: "$TMP/lenet"
random_seed: 5
EOF
export OPENBLAS_NUM_THREADS=1
P=$((20000 + $$ % 20000))
URL=tcp://10.98.0.1:$P
ip netns exec "$NS1" "$BIN" train -solver "$TMP/solver.prototxt" -rank 0 -clusterSize 2 -rendezvous "$URL" \
    -secret "netns-$$" -iface "$VA" -dist_timeout 20 2>"$TMP/rank0.log" &
P0=$!
ip netns exec "$NS2" "$BIN" train -solver "$TMP/solver.prototxt" -rank 1 -clusterSize 2 -rendezvous "$URL" \
    -secret "netns-$$" -iface "$VB" -dist_timeout 20 2>"$TMP/rank1.log"
R1=$?
wait $P0
R0=$?
fails=0
if [ $R0 -ne 0 ] || [ $R1 -ne 0 ]; then
    echo "FAIL: rank 0 exited $R0 ($(tail -1 "$TMP/rank0.log")), rank 1 exited $R1 ($(tail -1 "$TMP/rank1.log"))"
    fails=1
fi
[ -f "$TMP/lenet_iter_20.caffemodel" ] || { echo "FAIL: rank 0 wrote no lenet_iter_20.caffemodel"; fails=1; }
grep -q "Rank 0 of 2" "$TMP/rank0.log" || { echo "FAIL: rank 0 did not train as rank 0 of 2"; fails=1; }
grep -q "Test net output #0: accuracy" "$TMP/rank0.log" || { echo "FAIL: no test accuracy"; fails=1; }
[ -s "$TMP/rank1.log" ] && { echo "FAIL: rank 1 logged: $(head -2 "$TMP/rank1.log")"; fails=1; }
ls "$TMP"/lenet_iter_* | grep -q . && [ $(ls "$TMP"/lenet_iter_* | wc -l) -eq 2 ] ||
    { echo "FAIL: expected one snapshot pair (rank 0's): $(ls "$TMP")"; fails=1; }
[ $fails -eq 0 ] || exit 1
echo "ok: LeNet trained 20 iterations over veth 10.98.0.1 <-> 10.98.0.2; $(grep 'accuracy' "$TMP/rank0.log" | tail -1 | sed 's/^ *//')"
rm -rf "$TMP"
