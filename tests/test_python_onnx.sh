#!/bin/sh
# ONNX export checked by ONNX Runtime (python/tests/test_onnx.py): the
# cached venv of tests/test_python.sh with PyPI's onnx and onnxruntime added,
# the deploy nets of the corpus as test_zoo_nets lists them, every check run
# from outside the tree with LD_LIBRARY_PATH unset.
set -u
ROOT=$(pwd)
PY=${PYTHON:-python3}
SHARED=$(cd "${CREMA_SHARED:-../shared}" && pwd)
TMPBASE=${CREMA_TMP:-build/tmp}
mkdir -p "$TMPBASE"
TMPBASE=$(cd "$TMPBASE" && pwd)
CACHE=$(dirname "$TMPBASE")
TMP=$TMPBASE/onnx.$$
BIN=$(realpath "${CREMA_BIN:-$CACHE/bin/crema}")
rm -rf "$TMP"; mkdir -p "$TMP"
finish() { rc=$1; [ "$rc" -eq 0 ] && rm -rf "$TMP"; exit "$rc"; }

. "$ROOT/tests/python_venv.sh"
venv_create || finish 1
venv_pip onnx "onnx>=1.14" || finish 1
venv_pip onnxruntime "onnxruntime>=1.16" || finish 1
venv_install_crema || finish 1

# The deploy nets: test_zoo_nets' own walk of the corpus.
if ! CREMA_SHARED="$SHARED" "$CACHE/test_zoo_nets" --list-deploy >"$TMP/zoo_list.txt" 2>"$TMP/zoo_list.log"; then
  tail -20 "$TMP/zoo_list.log"; echo "FAIL test_zoo_nets --list-deploy"; finish 1
fi
echo "ok   $(wc -l <"$TMP/zoo_list.txt") deploy nets listed by test_zoo_nets"

cd "$TMP" || finish 1
env -u LD_LIBRARY_PATH CREMA_SHARED="$SHARED" CREMA_TMP="$TMP" CREMA_BIN="$BIN" \
    CREMA_ZOO_LIST="$TMP/zoo_list.txt" OPENBLAS_NUM_THREADS=1 "$VPY" "$ROOT/python/tests/test_onnx.py" 2>&1
finish $?
