#!/bin/sh
# The Python package end to end: a virtualenv, `pip install ./python` (its
# build step builds libcrema with CMake and ships it inside the package), a
# wheel from the repository root, then python/tests/test_net.py run from
# outside the tree with LD_LIBRARY_PATH unset. The venv and the CMake build
# are kept next to $CREMA_TMP (build/python-venv, build/python-cmake) and
# reinstalled only when the sources change (tests/python_env.sh).
set -u
. "$(dirname "$0")/python_env.sh"
SHARED=$(cd "${CREMA_SHARED:-../shared}" && pwd)
TMP=$TMPBASE/python.$$
rm -rf "$TMP"; mkdir -p "$TMP"

python_env_setup "$TMP" || { fails=$((fails + 1)); finish; }
# pip install . from the root builds the same package
if "$VPY" -m pip wheel --disable-pip-version-check --no-build-isolation --no-deps -w "$TMP/wheel" . \
     >"$TMP/wheel.log" 2>&1 \
   && "$VPY" -c "import zipfile, glob, sys; n = zipfile.ZipFile(glob.glob(sys.argv[1] + '/crema-*.whl')[0]).namelist(); sys.exit(not ('crema/_lib/libcrema.so' in n and 'crema/net.py' in n and 'com/yahoo/ml/caffe/CaffeOnSpark.py' in n and 'caffe/proto/caffe_pb2.py' in n and 'caffe/pycaffe.py' in n))" "$TMP/wheel"
then ok "pip wheel . (root) ships crema/_lib/libcrema.so, com/yahoo/ml/caffe and caffe (with caffe_pb2)"
else tail -20 "$TMP/wheel.log"; bad "pip wheel . (root)"; fi

# The shipped library: inside the venv, no run path into the source or build tree.
LIB=$(cd "$TMP" && env -u LD_LIBRARY_PATH "$VPY" -c "import crema; print(crema.library_path())")
case "$LIB" in
  "$VENV"/*/site-packages/crema/_lib/libcrema.so) ok "libcrema.so loaded from the package ($LIB)" ;;
  *) bad "libcrema.so loaded from $LIB, not from the venv's package" ;;
esac
if readelf -d "$LIB" | grep -E 'R(UN)?PATH' | grep -qF -e "$ROOT" -e "$CACHE"; then
  bad "libcrema.so has a run path into the tree: $(readelf -d "$LIB" | grep -E 'R(UN)?PATH')"
else ok "libcrema.so has no run path into the source or build tree"; fi
if env -u LD_LIBRARY_PATH ldd "$LIB" | grep -q "not found"; then
  bad "libcrema.so dependencies: $(env -u LD_LIBRARY_PATH ldd "$LIB" | grep 'not found')"
else ok "libcrema.so dependencies resolve without LD_LIBRARY_PATH"; fi

# The unit tests, from outside the tree, without LD_LIBRARY_PATH.
if (cd "$TMP" && env -u LD_LIBRARY_PATH CREMA_TEST_INSTALLED=1 CREMA_SHARED="$SHARED" CREMA_TMP="$TMP" \
      OPENBLAS_NUM_THREADS=1 "$VPY" "$ROOT/python/tests/test_net.py" 2>&1); then
  ok "python/tests/test_net.py"
else bad "python/tests/test_net.py"; fi

finish
