#!/bin/sh
# Python's crema.Net over the library of this build: a V1 net of the upgrade
# corpus opens with the upgrade notice (Python goes through the C API, so it
# upgrades as every command does); a path holding a NUL byte is refused
# instead of being cut short at the NUL and opening another file.
set -u
NAME=python_upgrade_paths
. tests/cli_testing.sh
LIB=$(dirname "$BIN")/../lib/libcrema.so
[ -f "$LIB" ] || { echo "skipped: no $LIB"; exit 77; }
# A sanitized library (make asan) needs its runtime loaded first, which a
# plain python3 does not do.
if nm -D "$LIB" 2>/dev/null | grep -q ' U __asan_init'; then
    echo "skipped: $LIB is built with AddressSanitizer"
    exit 77
fi
python3 -c "import numpy" 2>/dev/null || { echo "skipped: no numpy"; exit 77; }
export CREMA_LIBRARY="$LIB" PYTHONPATH="$(pwd)/python"
cat >"$TMP/check.py" <<'PY'
import sys
import crema
old, deploy, weights = sys.argv[1:4]
net = crema.Net(old)
assert net.layer_names[:2] == ["input", "conv1"], net.layer_names
for args in ((deploy + "\0.junk",), (deploy, weights + "\0.junk")):
    try:
        crema.Net(*args)
    except ValueError as e:
        assert "NUL" in str(e), e
    else:
        sys.exit("a path with a NUL byte was opened: %r" % (args,))
net = crema.Net(deploy)
try:
    net.load_weights(weights + "\0")
except ValueError:
    pass
else:
    sys.exit("load_weights took a path with a NUL byte")
# every path the package hands to C: solvers, weights files, databases
for call in (lambda: crema.Solver(deploy + "\0"), lambda: crema.read_caffemodel(weights + "\0"),
             lambda: crema.db_count(weights + "\0")):
    try:
        call()
    except ValueError as e:
        assert "NUL" in str(e), e
    else:
        sys.exit("a path with a NUL byte reached C")
print("python ok")
PY
OLD=$SHARED/corpus/upgrade/V1_before_2015/examples/mnist/lenet.prototxt
expect_rc 0 python3 "$TMP/check.py" "$OLD" "$SHARED/golden/models/lenet_mnist/deploy.prototxt" \
    "$SHARED/golden/models/lenet_mnist/lenet_iter_10000.caffemodel"
has "$TMP/out" "python ok"
has "$TMP/err" "crema: note: $OLD uses the V1 'layers' format"
echo "$checks checks, $fails failed"
rm -rf "$TMP"
[ "$fails" -eq 0 ]
