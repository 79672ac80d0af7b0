#!/bin/sh
# ONNX export checked by ONNX Runtime (python/tests/test_onnx.py): the
# cached venv of tests/python_env.sh with PyPI's onnx and onnxruntime (added by
# tests/python_env_ready.sh),
# the deploy nets of the corpus as test_zoo_nets lists them, Fashion-MNIST
# LMDBs for the demo check; run from outside the tree, LD_LIBRARY_PATH unset.
set -u
. "$(dirname "$0")/python_env.sh"
SHARED=$(cd "${CREMA_SHARED:-../shared}" && pwd)
TMP=$TMPBASE/onnx.$$
BIN=$(realpath "${CREMA_BIN:-$CACHE/bin/crema}")
rm -rf "$TMP"; mkdir -p "$TMP"
finish() { rc=$1; [ "$rc" -eq 0 ] && rm -rf "$TMP"; exit "$rc"; }

python_env_setup "$TMP" || finish 1
# onnx and onnxruntime: installed by the fixture (tests/python_env_ready.sh)
"$VPY" -c "import onnx, onnxruntime" 2>/dev/null \
  || { echo "FAIL onnx/onnxruntime missing from the venv (tests/python_env_ready.sh installs them)"; finish 1; }

# The deploy nets: test_zoo_nets' own walk of the corpus.
if ! CREMA_SHARED="$SHARED" "$CACHE/test_zoo_nets" --list-deploy >"$TMP/zoo_list.txt" 2>"$TMP/zoo_list.log"; then
  tail -20 "$TMP/zoo_list.log"; echo "FAIL test_zoo_nets --list-deploy"; finish 1
fi
echo "ok   $(wc -l <"$TMP/zoo_list.txt") deploy nets listed by test_zoo_nets"
LMDBS=$(python_env_lmdbs "$BIN") || { echo "FAIL Fashion-MNIST LMDBs (crema convert-mnist)"; finish 1; }

cd "$TMP" || finish 1
env -u LD_LIBRARY_PATH CREMA_SHARED="$SHARED" CREMA_TMP="$TMP" CREMA_BIN="$BIN" CREMA_ZOO_LIST="$TMP/zoo_list.txt" \
    CREMA_FASHION_LMDB="$LMDBS" OPENBLAS_NUM_THREADS=1 "$VPY" "$ROOT/python/tests/test_onnx.py" 2>&1
finish $?
