#!/bin/sh
# A new CaffeOnSpark user's first run, unchanged but for paths and solver_mode:
#   crema -train -features accuracy,ip1 -label label -conf lenet_memory_solver.prototxt \
#         -model file:.../lenet.model -output file:.../features
# with CaffeOnSpark's own prototxts pointed at Fashion-MNIST LMDBs made by
# crema convert-mnist. It must train, write one feature record per test
# sample, and the argmax accuracy of ip1's successor (ip2 = W2 ip1 + b2, from
# the saved model) must equal what `crema test` prints for the same model.
set -u
BIN=$(realpath "${CREMA_BIN:-build/bin/crema}")
SHARED=$(realpath "${CREMA_SHARED:-../shared}")
TMP=${CREMA_TMP:-build/tmp}/cosnew.$$
FMNIST=/usr/share/datasets/fashion-mnist
rm -rf "$TMP"
mkdir -p "$TMP"
TMP=$(realpath "$TMP")
fail() { echo "FAIL: $*"; exit 1; }
cd "$TMP" || fail "cannot enter $TMP"

"$BIN" convert-mnist "$FMNIST/train-images-idx3-ubyte.gz" "$FMNIST/train-labels-idx1-ubyte.gz" train_lmdb \
    >/dev/null || fail "convert-mnist train"
"$BIN" convert-mnist "$FMNIST/t10k-images-idx3-ubyte.gz" "$FMNIST/t10k-labels-idx1-ubyte.gz" test_lmdb \
    >/dev/null || fail "convert-mnist test"
cp "$SHARED/corpus/caffeonspark/data/lenet_memory_solver.prototxt" \
   "$SHARED/corpus/caffeonspark/data/lenet_memory_train_test.prototxt" .
chmod u+w ./*.prototxt
# Only what a user on this machine must change: the sources, CPU mode, and
# (to keep the test short) 300 iterations instead of 2000.
sed -i "s|file:/Users/mridul/bigml/demodl/mnist_train_lmdb|file:$TMP/train_lmdb|;
        s|file:/Users/mridul/bigml/demodl/mnist_test_lmdb/|file:$TMP/test_lmdb/|" lenet_memory_train_test.prototxt
sed -i 's/solver_mode: GPU/solver_mode: CPU/; s/^max_iter: 2000/max_iter: 300/' lenet_memory_solver.prototxt
grep -q "file:$TMP/train_lmdb" lenet_memory_train_test.prototxt || fail "the train source was not rewritten"
grep -q "max_iter: 300" lenet_memory_solver.prototxt || fail "max_iter was not rewritten"

"$BIN" -train -features accuracy,ip1 -label label -conf lenet_memory_solver.prototxt \
    -model "file:$TMP/lenet.model" -output "file:$TMP/features" >train.log 2>&1 ||
    fail "training exited $?: $(tail -3 train.log)"
grep -q "Optimization Done" train.log || fail "no 'Optimization Done' in the log"
[ -s lenet.model ] || fail "no model at $TMP/lenet.model"
[ "$(wc -l <features)" -eq 10000 ] || fail "expected 10000 feature records, got $(wc -l <features)"

"$BIN" test -model lenet_memory_train_test.prototxt -weights lenet.model -iterations 100 >test.log 2>&1 ||
    fail "crema test exited $?: $(tail -3 test.log)"
want=$(sed -n 's/^.*accuracy = \([0-9.e-]*\)$/\1/p' test.log | tail -1)
[ -n "$want" ] || fail "crema test printed no accuracy: $(tail -3 test.log)"

# The model in text, to read ip2's weights without any other tool.
"$BIN" upgrade-net lenet.model model.prototxt -in_format binary -out_format text >/dev/null 2>&1 ||
    fail "could not print the model as text"
python3 - "$want" <<'PY' || exit 1
import json, re, sys
import numpy as np
want = float(sys.argv[1])
text = open("model.prototxt").read()
m = re.search(r'name: "ip2".*?(?=\nlayer \{|\Z)', text, re.S)
blobs = re.findall(r'blobs \{(.*?)\n  \}', m.group(0), re.S)
def vals(b):
    return np.array([float(v) for v in re.findall(r'data: ([-0-9.e+inf]+)', b)], dtype=np.float32)
W = vals(blobs[0]).reshape(10, -1)
b = vals(blobs[1])
ids, hits = set(), 0
for line in open("features"):
    r = json.loads(line)
    ids.add(r["SampleID"])
    ip2 = W @ np.array(r["ip1"], dtype=np.float32) + b
    hits += int(np.argmax(ip2) == int(r["label"][0]))
n = len(ids)
got = hits / n
print("features: %d records, %d distinct SampleIDs; argmax accuracy of ip2 from ip1: %.4f; crema test: %.4f"
      % (n, len(ids), got, want))
if n != 10000:
    sys.exit("FAIL: expected 10000 distinct SampleIDs, got %d" % n)
if abs(got - want) > 1e-4:
    sys.exit("FAIL: accuracy from features %.6f != crema test %.6f" % (got, want))
PY
echo "ok: the CaffeOnSpark new-user run trains, writes 10000 records, and agrees with crema test ($want)"
rm -rf "$TMP"
