#!/bin/sh
# ctest's fixture for the Python and Spark tests (CMakeLists.txt: the test
# python_venv, FIXTURES_SETUP): makes the cached virtualenv of
# tests/python_env.sh current, with PyPI's onnx and onnxruntime for
# test_python_onnx.sh, and the Fashion-MNIST LMDBs, before any of them runs.
# Those tests then only read the venv, so they may run side by side (the ones
# that start Spark still take turns: RESOURCE_LOCK spark).
set -u
. "$(dirname "$0")/python_env.sh"
TMP=$TMPBASE/venv_ready.$$
BIN=$(realpath "${CREMA_BIN:-$CACHE/bin/crema}")
rm -rf "$TMP"; mkdir -p "$TMP"

python_env_setup "$TMP" || { fails=1; finish; }
for spec in "onnx onnx>=1.14" "onnxruntime onnxruntime>=1.16"; do
  mod=${spec%% *}; req=${spec#* }
  if "$VPY" -c "import $mod" 2>/dev/null; then continue; fi
  if "$VPY" -m pip install -q --disable-pip-version-check "$req" >"$TMP/pip.log" 2>&1; then
    ok "pip install $req"
  else cat "$TMP/pip.log"; bad "$req in the venv (from PyPI)"; fi
done
if DIR=$(python_env_lmdbs "$BIN"); then ok "Fashion-MNIST LMDBs in $DIR"
else bad "Fashion-MNIST LMDBs (crema convert-mnist)"; fi
finish
