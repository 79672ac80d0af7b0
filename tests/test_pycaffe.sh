#!/bin/sh
# pycaffe's interface (the `caffe` package installed with crema's Python
# package) end to end: the cached virtualenv of tests/python_env.sh, then
# python/tests/pycaffe (pycaffe's own tests' cases rewritten, Python layers
# against C layers and Caffe's golden run, the golden models and an SGD run
# through caffe.Classifier and caffe.SGDSolver) from outside the tree, with
# LD_LIBRARY_PATH unset; and the command line on a net with a Python layer.
set -u
. "$(dirname "$0")/python_env.sh"
SHARED=$(cd "${CREMA_SHARED:-../shared}" && pwd)
TMP=$TMPBASE/pycaffe.$$
rm -rf "$TMP"; mkdir -p "$TMP"

python_env_setup "$TMP" || { fails=$((fails + 1)); finish; }

# caffe_pb2 was made at build time, inside the installed package
PB2=$(cd "$TMP" && env -u LD_LIBRARY_PATH "$VPY" -c "import caffe.proto.caffe_pb2 as m; print(m.__file__)")
case "$PB2" in
  "$VENV"/*/site-packages/caffe/proto/caffe_pb2.py) ok "caffe_pb2 generated into the package ($PB2)" ;;
  *) bad "caffe_pb2 loaded from $PB2, not from the venv's package" ;;
esac

if (cd "$TMP" && env -u LD_LIBRARY_PATH CREMA_SHARED="$SHARED" CREMA_TMP="$TMP" OPENBLAS_NUM_THREADS=1 \
      GLOG_minloglevel=1 "$VPY" -m unittest discover -s "$ROOT/python/tests/pycaffe" -p 'test_*.py' 2>&1); then
  ok "python/tests/pycaffe"
else bad "python/tests/pycaffe"; fi

# From the command line a Python layer still gets the clear error.
BIN=${CREMA_BIN:-build/bin/crema}
cat > "$TMP/py.prototxt" <<'NET'
layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 1 } } }
layer { name: 'py' type: 'Python' bottom: 'x' top: 'y' python_param { module: 'm' layer: 'L' } }
NET
if "$BIN" time -model "$TMP/py.prototxt" -iterations 1 >"$TMP/cli.out" 2>&1; then
  bad "crema time on a Python layer net succeeded"
elif grep -q "layer py" "$TMP/cli.out" && grep -q "import caffe" "$TMP/cli.out"; then
  ok "crema time on a Python layer net: $(grep -m1 "layer py" "$TMP/cli.out")"
else cat "$TMP/cli.out"; bad "crema time on a Python layer net: no clear error"; fi

finish
