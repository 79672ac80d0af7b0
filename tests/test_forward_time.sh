#!/bin/sh
# crema forward and crema time end to end: forward on the golden LeNet MNIST
# model compared number by number with Caffe's blobs, the error cases, and
# the lines of `crema time`.
set -u
BIN=${CREMA_BIN:-build/bin/crema}
SHARED=${CREMA_SHARED:-../shared}
TMP=${CREMA_TMP:-build/tmp}/forward_time.$$
MODEL=$SHARED/golden/models/lenet_mnist
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
fails=0
pass() { echo "ok   $1"; }
fail() { echo "FAIL $1"; fails=$((fails + 1)); }

# Caffe's blobs from golden.caffemodel (a NetParameter whose "blob/<name>"
# layers hold each blob's data) as .npy, read with a small protobuf decoder:
# numpy has no protobuf reader and the machine has no caffe_pb2.
cat > "$TMP/golden.py" <<'EOF'
import struct, sys
import numpy as np

def varint(b, i):
    v = s = 0
    while True:
        c = b[i]; i += 1
        v |= (c & 0x7f) << s; s += 7
        if c < 0x80:
            return v, i

def fields(b):
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        f, w = key >> 3, key & 7
        if w == 0:
            v, i = varint(b, i)
        elif w == 1:
            v = b[i:i + 8]; i += 8
        elif w == 5:
            v = b[i:i + 4]; i += 4
        elif w == 2:
            n, i = varint(b, i)
            v = b[i:i + n]; i += n
        else:
            raise ValueError("wire type %d" % w)
        yield f, w, v

def blob(b):
    data, shape, legacy = [], [], {}
    for f, w, v in fields(b):
        if f == 5 and w == 2:
            data.extend(struct.unpack("<%df" % (len(v) // 4), v))
        elif f == 5 and w == 5:
            data.append(struct.unpack("<f", v)[0])
        elif f == 7:
            for g, gw, gv in fields(v):
                if g == 1 and gw == 2:
                    j = 0
                    while j < len(gv):
                        d, j = varint(gv, j); shape.append(d)
                elif g == 1:
                    shape.append(gv)
        elif f in (1, 2, 3, 4) and w == 0:
            legacy[f] = v
    if not shape and legacy:
        shape = [legacy.get(k, 1) for k in (1, 2, 3, 4)]
    return np.array(data, dtype=np.float32).reshape(shape)

path, outdir = sys.argv[1], sys.argv[2]
for f, w, v in fields(open(path, "rb").read()):
    if f != 100:
        continue
    name, blobs = None, []
    for g, gw, gv in fields(v):
        if g == 1:
            name = gv.decode()
        elif g == 7:
            blobs.append(gv)
    if name and name.startswith("blob/") and blobs:
        np.save("%s/%s.npy" % (outdir, name[5:]), blob(blobs[0]))
EOF
mkdir -p "$TMP/golden"
if python3 "$TMP/golden.py" "$MODEL/golden.caffemodel" "$TMP/golden" && [ -f "$TMP/golden/data.npy" ]; then
    pass "golden blobs extracted ($(ls "$TMP/golden" | wc -l) files)"
else
    fail "could not extract blob/data from $MODEL/golden.caffemodel"
    exit 1
fi

# Forward with the trained weights, every blob of interest written out.
if "$BIN" forward -model "$MODEL/net.prototxt" -weights "$MODEL/lenet_iter_10000.caffemodel" \
    -input data="$TMP/golden/data.npy" -blobs conv1,pool2,ip1,ip2,loss -output "$TMP/out" >"$TMP/log" 2>&1; then
    pass "forward lenet_mnist"
else
    fail "forward lenet_mnist exited non-zero: $(cat "$TMP/log")"
fi
# Numbers against Caffe (tolerance of golden/README for models: rtol 1e-4 of
# the blob's largest magnitude, atol 1e-6), and top-1 classes against
# expected.txt.
cat > "$TMP/compare.py" <<'EOF'
import sys
import numpy as np
gold, out, expected = sys.argv[1], sys.argv[2], sys.argv[3]
bad = 0
for b in ["conv1", "pool2", "ip1", "ip2", "loss"]:
    g = np.load("%s/%s.npy" % (gold, b)); o = np.load("%s/%s.npy" % (out, b))
    if g.shape != o.shape:
        print("FAIL %s: shape %s, want %s" % (b, o.shape, g.shape)); bad += 1; continue
    err = float(np.abs(o.astype(np.float64) - g).max()); lim = 1e-4 * float(np.abs(g).max()) + 1e-6
    print("%s %s: max |err| %.3g (limit %.3g)" % ("ok  " if err <= lim else "FAIL", b, err, lim))
    bad += err > lim
want = [int(l.split()[0]) for l in open(expected) if l.startswith(" ") and l.split()][0::5]
got = [int(i) for i in np.load("%s/loss.npy" % out).argmax(axis=1)]
print("%s top-1 %s, expected.txt %s" % ("ok  " if got == want else "FAIL", got, want))
bad += got != want
sys.exit(1 if bad else 0)
EOF
if python3 "$TMP/compare.py" "$TMP/golden" "$TMP/out" "$MODEL/expected.txt"; then
    pass "forward matches Caffe's blobs"
else
    fail "forward differs from Caffe's blobs"
fi

# A new batch size reshapes the net: the first 3 images alone give the same
# probabilities; default blobs are the net's outputs (here: loss).
python3 -c "import numpy as np; np.save('$TMP/three.npy', np.load('$TMP/golden/data.npy')[:3])"
"$BIN" forward -model "$MODEL/net.prototxt" -weights "$MODEL/lenet_iter_10000.caffemodel" \
    -input data="$TMP/three.npy" -output "$TMP/out3" >"$TMP/log" 2>&1
if python3 -c "
import numpy as np, sys
o = np.load('$TMP/out3/loss.npy'); g = np.load('$TMP/golden/loss.npy')[:3]
print('reshaped output', o.shape, 'max |err|', abs(o - g).max())
sys.exit(0 if o.shape == (3, 10) and abs(o - g).max() <= 1e-5 else 1)"; then
    pass "forward reshapes to a batch of 3"
else
    fail "forward with a batch of 3: $(cat "$TMP/log")"
fi

# Two -input flags: an MNIST train net with data and label inputs.
cat > "$TMP/two.prototxt" <<'EOF'
name: "two"
layer { name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 3 } } }
layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "s" }
EOF
python3 -c "
import numpy as np
np.save('$TMP/a.npy', np.arange(6, dtype=np.float32).reshape(2, 3))
np.save('$TMP/b.npy', np.full((2, 3), 0.5, dtype=np.float32))"
"$BIN" forward -model "$TMP/two.prototxt" -input a="$TMP/a.npy" -input b="$TMP/b.npy" -output "$TMP/two" >"$TMP/log" 2>&1
if python3 -c "
import numpy as np, sys
s = np.load('$TMP/two/s.npy'); print('sum', s.ravel())
sys.exit(0 if (s == np.arange(6).reshape(2, 3) + 0.5).all() else 1)"; then
    pass "repeated -input flags"
else
    fail "repeated -input flags: $(cat "$TMP/log")"
fi

# Errors: exit 1 and one line naming the problem.
expect_error() { # name, pattern, command...
    name=$1 pattern=$2
    shift 2
    "$@" >"$TMP/err" 2>&1
    rc=$?
    if [ $rc -eq 1 ] && grep -q "$pattern" "$TMP/err"; then
        pass "$name: $(head -1 "$TMP/err")"
    else
        fail "$name: want exit 1 and \"$pattern\", got exit $rc: $(cat "$TMP/err")"
    fi
}
F="$BIN forward -model $MODEL/net.prototxt -weights $MODEL/lenet_iter_10000.caffemodel -output $TMP/e"
expect_error "unknown blob" "nosuch" $F -input data="$TMP/golden/data.npy" -blobs ip1,nosuch
expect_error "unknown input" "nosuch" $F -input nosuch="$TMP/golden/data.npy"
expect_error "missing file" "missing.npy" $F -input data="$TMP/missing.npy"
python3 -c "import numpy as np; np.save('$TMP/rgb.npy', np.zeros((2, 3, 28, 28), np.float32))"
expect_error "shape mismatch" "channels" $F -input data="$TMP/rgb.npy"
expect_error "axes mismatch" "does not fit" $F -input data="$TMP/a.npy"
expect_error "bad -input" "NAME=FILE" $F -input data
expect_error "bad phase" "TRAIN or TEST" $F -phase VAL
expect_error "missing model" "nosuch.prototxt" "$BIN" forward -model "$TMP/nosuch.prototxt" -output "$TMP/e"
expect_error "time bad iterations" "iterations" "$BIN" time -model "$SHARED/bench/lenet.prototxt" -iterations 0

# crema time prints Caffe's lines.
if "$BIN" time -model "$SHARED/bench/lenet.prototxt" -iterations 2 >"$TMP/time" 2>&1; then
    pass "time lenet"
else
    fail "time lenet exited non-zero: $(tail -3 "$TMP/time")"
fi
for pat in "conv1	forward: [0-9.e-]* ms\.$" "conv1	backward: [0-9.e-]* ms\.$" "loss	backward: " \
    "^Average Forward pass: [0-9.e-]* ms\.$" "^Average Backward pass: [0-9.e-]* ms\.$" \
    "^Average Forward-Backward: [0-9.e-]* ms\.$" "^Total Time: [0-9.e-]* ms\.$" \
    "^Iteration: 2 forward-backward time: "; do
    if grep -q "$pat" "$TMP/time"; then
        pass "time prints /$pat/"
    else
        fail "time output lacks /$pat/: $(cat "$TMP/time")"
    fi
done
n=$(grep -c "	forward: " "$TMP/time")
if [ "$n" -eq 9 ]; then pass "time: 9 layers timed"; else fail "time: want 9 per-layer forward lines, got $n"; fi

echo "$fails failed"
[ $fails -eq 0 ]
