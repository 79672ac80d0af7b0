#!/bin/sh
# The crema command line end to end: bad invocations (one line, exit 1, no
# output left behind), help with defaults, crema test / features / the
# CaffeOnSpark modes on a small net trained here on Fashion-MNIST, the
# TensorBoard file read back by tensorboard's own reader, crema plot.
set -u
NAME=cli
. "$(dirname "$0")/cli_testing.sh"
# bad CMD... TEXT: exit 1, exactly one line on stderr naming TEXT, nothing on stdout
bad() {
    eval "text=\${$#}"
    n=$(($# - 1))
    set -- "$@"
    args=""
    i=0
    for a in "$@"; do
        i=$((i + 1))
        [ $i -le $n ] || break
        args="$args '$a'"
    done
    eval "\"$BIN\" $args" >"$TMP/out" 2>"$TMP/err"
    got=$?
    lines=$(wc -l <"$TMP/err")
    if [ "$got" -eq 1 ] && [ "$lines" -eq 1 ] && grep -q -- "$text" "$TMP/err" && [ ! -s "$TMP/out" ]; then
        ok
    else
        fail "crema$args: rc $got, $lines stderr lines, wanted one naming \"$text\": $(cat "$TMP/err" "$TMP/out" | head -5)"
    fi
}

cd "$TMP" || exit 1
FM=/usr/share/datasets/fashion-mnist
if [ ! -f $FM/t10k-images-idx3-ubyte.gz ]; then
    echo "FAIL: $FM missing (scripts/deps.sh installs dataset-fashion-mnist)"
    exit 1
fi
expect_rc 0 "$BIN" convert-mnist $FM/t10k-images-idx3-ubyte.gz $FM/t10k-labels-idx1-ubyte.gz fm_lmdb
cat >net.prototxt <<'NET'
name: "tiny"
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { scale: 0.00390625 } data_param { source: "fm_lmdb" batch_size: 64 backend: LMDB } }
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TEST }
  transform_param { scale: 0.00390625 } data_param { source: "fm_lmdb" batch_size: 100 backend: LMDB } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  inner_product_param { num_output: 32 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy" include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
NET
cat >solver.prototxt <<'NET'
net: "net.prototxt"
test_iter: 10
test_interval: 50
base_lr: 0.05
momentum: 0.9
lr_policy: "inv"
gamma: 0.0001
power: 0.75
display: 25
max_iter: 200
snapshot: 100
snapshot_prefix: "tiny"
random_seed: 1
solver_mode: CPU
NET

# ---- bad invocations: one line naming the problem, exit 1 ----
expect_rc 1 "$BIN"
has "$TMP/err" "usage: crema"
bad bogus "unknown command"
bad test -model net.prototxt -weights x -bogus 1 '"-bogus"'
bad test -modle net.prototxt "unknown flag"
bad test -model net.prototxt -iterations "needs a value"
bad test -model net.prototxt -weights w -iterations ten "integer"
bad test -model nonexistent.prototxt -weights w "nonexistent.prototxt"
bad test -model net.prototxt -weights missing.caffemodel "missing.caffemodel"
bad test -model hdfs://nn/net.prototxt -weights w "file: URIs"
bad test -model net.prototxt -phase VALIDATE -weights w "VALIDATE"
bad -features ip2 -conf solver.prototxt "-model"
bad train -solver solver.prototxt -weights a -snapshot b "not both"
bad features -model net.prototxt -weights net.prototxt -features ip2 -outputFormat bogus "bogus"
bad -train -conf solver.prototxt -model m -outputFormat parquet "parquet"
bad -train -conf solver.prototxt -model m -imageRoot /x "imageRoot"
bad -train -conf solver.prototxt -model m -clusterSize x "clusterSize"
bad -test -conf solver.prototxt -model m -snapshot s "needs -weights"
bad -conf solver.prototxt -model m "-train, -test or -features"
bad help nothere "nothere"
bad plot "expected one"
bad features -model net.prototxt -weights net.prototxt -features ip2 -output /no/such/dir/f.json "/no/such/dir"

# ---- help lists every flag with its default ----
expect_rc 0 "$BIN" help test
has "$TMP/out" 'iterations.*default: "50"'
has "$TMP/out" 'phase.*default: "TEST"'
expect_rc 0 "$BIN" features --help
has "$TMP/out" 'outputFormat.*default: "json"'
has "$TMP/out" 'iterations.*default: "all"'
expect_rc 0 "$BIN" help cos
for f in conf train test features label outputFormat model output devices persistent snapshot weights connection \
    resize clusterSize lmdb_partitions imageRoot labelFile captionFile captionLength vocabSize imageCaptionDFDir \
    vocabDir embeddingDFDir; do
    has "$TMP/out" "^  -$f "
done
expect_rc 0 "$BIN" device_query
has "$TMP/out" "CPU"
# Asking for a GPU where there is none (CI, these machines): one clear line, exit 1, at start.
if [ "$(grep -c '^GPUs: 0' "$TMP/out")" = 1 ]; then
    printf 'net: "%s/demo/lenet_train_test.prototxt"\nbase_lr: 0.01\nmax_iter: 1\n' "$(pwd)" >"$TMP/gpu_solver.prototxt"
    for g in 0 0,1 all; do
        expect_rc 1 "$BIN" train -solver "$TMP/gpu_solver.prototxt" -gpu $g
        has "$TMP/err" "crema train: -gpu $g: .*\(CUDA\|GPU\)"
        [ "$(wc -l <"$TMP/err")" -eq 1 ] && ok || fail "train -gpu $g: more than one line: $(cat "$TMP/err")"
    done
    expect_rc 1 "$BIN" time -model demo/lenet_train_test.prototxt -gpu 0
    has "$TMP/err" "CUDA\|GPU"
    expect_rc 1 "$BIN" device_query -gpu 0
    has "$TMP/err" "CUDA\|GPU"
    expect_rc 1 "$BIN" train -solver "$TMP/gpu_solver.prototxt" -gpu x
    has "$TMP/err" '"x" is not a GPU id'
fi
expect_rc 0 "$BIN" version
has "$TMP/out" "crema "

# ---- CaffeOnSpark training: final model at -model, snapshots beside it ----
mkdir models
expect_rc 0 "$BIN" -train -conf solver.prototxt -model file:$TMP/models/tiny.caffemodel -tensorboard tb \
    -connection ethernet
[ -f models/tiny.caffemodel ] && ok || fail "no final model at -model"
[ -f models/tiny_iter_100.caffemodel ] && ok || fail "no snapshot models/tiny_iter_100.caffemodel: $(ls models)"
has "$TMP/err" "note: -connection"
has "$TMP/err" "Test net output #0: accuracy"

# ---- crema test: Caffe's lines ----
expect_rc 0 "$BIN" test -model net.prototxt -weights models/tiny.caffemodel -iterations 100
has "$TMP/out" "^Batch 0, accuracy = "
has "$TMP/out" "^Batch 99, loss = "
has "$TMP/out" "^Loss: "
has "$TMP/out" "^loss = .* (\* 1 = .* loss)"
acc=$(sed -n 's/^accuracy = //p' "$TMP/out")

# ---- crema features: every sample once, three formats ----
expect_rc 0 "$BIN" features -model net.prototxt -weights models/tiny.caffemodel -features ip2,accuracy -label label \
    -output f.json
sed 's/batch_size: 100/batch_size: 128/' net.prototxt >net128.prototxt
expect_rc 0 "$BIN" features -model net128.prototxt -weights models/tiny.caffemodel -features ip2 -label label \
    -outputFormat npy -output file:$TMP/fnpy
expect_rc 0 "$BIN" features -model net.prototxt -weights models/tiny.caffemodel -features ip2 -outputFormat csv \
    -output f.csv
expect_rc 0 "$BIN" -test -conf solver.prototxt -model models/tiny.caffemodel -output file:$TMP/test.txt
expect_rc 0 "$BIN" -train -features accuracy,ip1 -label label -conf solver.prototxt -model file:$TMP/m2.caffemodel \
    -output file:$TMP/cosfeat.json
ls "$TMP"/*.tmp.* >/dev/null 2>&1 && fail "temporary files left behind" || ok

if python3 - "$acc" <<'PY'; then ok; else fail "python checks of the feature files"; fi
import json, sys
import numpy as np
acc = float(sys.argv[1])
recs = [json.loads(l) for l in open("f.json")]
assert len(recs) == 10000, len(recs)
ids = [r["SampleID"] for r in recs]
assert len(set(ids)) == 10000 and ids[0] == "00000000" and ids[-1] == "00009999", ids[:2]
ip2 = np.array([r["ip2"] for r in recs], dtype=np.float32)
lab = np.array([r["label"][0] for r in recs])
mine = float((ip2.argmax(1) == lab).mean())
assert abs(mine - acc) < 1e-4, (mine, acc)
assert all(len(r["accuracy"]) == 1 for r in recs)
a = np.load("fnpy/ip2.npy")
assert a.shape == (10000, 10), a.shape
assert np.abs(a - ip2).max() < 1e-4  # batch 128: a partial last batch, same samples
assert np.load("fnpy/label.npy")[:, 0].tolist() == lab.tolist()
assert open("fnpy/SampleID.txt").read().split() == ids
import csv
rows = list(csv.reader(open("f.csv")))
assert rows[0][:2] == ["SampleID", "ip2_0"] and len(rows) == 10001 and len(rows[1]) == 11
assert np.abs(np.array(rows[1][1:], dtype=np.float32) - ip2[0]).max() < 1e-5
t = dict(l.split(": ") for l in open("test.txt").read().splitlines())
assert abs(float(t["accuracy"]) - acc) < 1e-4, t
c = [json.loads(l) for l in open("cosfeat.json")]
assert len(c) == 10000 and sorted(c[0]) == ["SampleID", "accuracy", "ip1", "label"], sorted(c[0])
assert len(c[0]["ip1"]) == 32
print("features ok: %d records, argmax accuracy %.4f = crema test %.4f" % (len(recs), mine, acc))
PY

# ---- TensorBoard events, read by tensorboard's own reader ----
ev=$(ls tb/events.out.tfevents.* 2>/dev/null | head -1)
[ -n "$ev" ] && ok || fail "no event file in tb/"
if python3 -c "import tensorboard" 2>/dev/null; then
    if python3 - "$ev" <<'PY'; then ok; else fail "tensorboard could not read $ev"; fi
import sys, warnings
warnings.filterwarnings("ignore")
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
seen = {}
for e in EventFileLoader(sys.argv[1]).Load():
    for v in e.summary.value:
        val = v.simple_value if v.HasField("simple_value") else None
        if val is None:  # newer loaders turn scalars into tensors
            import numpy as np
            from tensorboard.util import tensor_util
            val = float(tensor_util.make_ndarray(v.tensor))
        seen.setdefault(v.tag, []).append((e.step, val))
assert set(seen) == {"train/loss", "train/lr", "test/accuracy", "test/loss"}, set(seen)
assert len(seen["train/loss"]) == 200 and seen["train/loss"][0][0] == 0 and seen["train/loss"][-1][0] == 199
assert [s for s, _ in seen["test/accuracy"]] == [0, 50, 100, 150, 200]
assert 0.5 < seen["test/accuracy"][-1][1] <= 1
assert abs(seen["train/lr"][0][1] - 0.05) < 1e-6
print("tensorboard ok:", {k: len(v) for k, v in seen.items()})
PY
else
    fail "python3 has no tensorboard package (scripts/deps.sh installs it)"
fi

# ---- crema plot ----
expect_rc 0 "$BIN" plot "$ev" -o ev.png
expect_rc 0 "$BIN" plot "$SHARED/corpus/caffeonspark/lenet_sample_output.txt" -o log.png
if python3 - <<'PY'; then ok; else fail "plot PNGs"; fi
import struct
for f in ("ev.png", "log.png"):
    d = open(f, "rb").read()
    assert d[:8] == b"\x89PNG\r\n\x1a\n", f
    w, h = struct.unpack(">II", d[16:24])
    assert (w, h) == (900, 560), (f, w, h)
PY

echo "test_cli: $checks checks, $fails failed"
cd / && rm -rf "$TMP"
[ "$fails" -eq 0 ]
