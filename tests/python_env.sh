# Sourced by the Python tests (test_python*.sh, test_pycaffe.sh, test_spark*.sh,
# test_cos_python.sh): the cached virtualenv next to $CREMA_TMP
# (build/python-venv, seeing the system's numpy, pyspark and pyarrow from
# scripts/deps.sh) with the crema package installed from this tree, and
# reinstalled only when what goes into the package changed. Sets ROOT,
# CACHE, VENV, VPY; python_env_setup TMP prints ok/FAIL lines and returns
# non-zero when the venv cannot be had. ok/bad print a check's line and count
# the failures; finish prints the count, removes $TMP when all passed and
# exits with the verdict (a test may define its own after sourcing this).
ROOT=$(pwd)
PY=${PYTHON:-python3}
TMPBASE=${CREMA_TMP:-build/tmp}
mkdir -p "$TMPBASE"
TMPBASE=$(cd "$TMPBASE" && pwd)
CACHE=$(dirname "$TMPBASE")
VENV=$CACHE/python-venv
VPY=$VENV/bin/python
export CREMA_CMAKE_BUILD_DIR="$CACHE/python-cmake"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
unset CREMA_LIBRARY PYTHONPATH
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }
finish() { [ $fails -eq 0 ] && rm -rf "$TMP"; echo "$fails failed"; [ $fails -eq 0 ]; exit $?; }

python_env_stamp() {
  (cd "$ROOT" && find python/crema python/com python/caffe python/setup.py python/crema_build.py python/pyproject.toml \
     setup.py pyproject.toml CMakeLists.txt include src -type f ! -name '*.pyc' | sort | xargs cat | cksum)
}

python_env_setup() {
  tmp=$1
  if ! "$VPY" -c "import sys" 2>/dev/null; then
    rm -rf "$VENV"
    if "$PY" -m venv --system-site-packages "$VENV" >"$tmp/venv.log" 2>&1; then echo "ok   python3 -m venv"
    else cat "$tmp/venv.log"; echo "FAIL python3 -m venv (Debian: python3-venv)"; return 1; fi
  fi
  if ! "$VPY" -c "import setuptools, sys; sys.exit(tuple(int(x) for x in setuptools.__version__.split('.')[:2]) < (70, 1))" 2>/dev/null; then
    "$VPY" -m pip install -q --disable-pip-version-check "setuptools>=70.1" >"$tmp/pip.log" 2>&1 \
      || { cat "$tmp/pip.log"; echo "FAIL setuptools>=70.1 in the venv (from PyPI)"; return 1; }
  fi
  if ! "$VPY" -c "import numpy" 2>/dev/null; then
    "$VPY" -m pip install -q --disable-pip-version-check numpy >"$tmp/pip.log" 2>&1 \
      || { cat "$tmp/pip.log"; echo "FAIL numpy in the venv (from PyPI)"; return 1; }
  fi
  stamp=$(python_env_stamp)
  if [ "$(cat "$VENV/crema.stamp" 2>/dev/null)" != "$stamp" ] \
     || ! "$VPY" -c "import crema.spark, com.yahoo.ml.caffe.CaffeOnSpark, caffe" 2>/dev/null; then
    rm -f "$VENV/crema.stamp"
    if "$VPY" -m pip install --disable-pip-version-check --no-build-isolation --no-deps --force-reinstall \
         ./python >"$tmp/install.log" 2>&1; then
      echo "ok   pip install ./python"
      echo "$stamp" > "$VENV/crema.stamp"
    else
      tail -40 "$tmp/install.log"; echo "FAIL pip install ./python"; return 1
    fi
  else
    echo "ok   installed crema is current"
  fi
  return 0
}

# Fashion-MNIST as LMDBs (Caffe's convert_mnist_data layout), made once by
# `crema convert-mnist` under $CACHE/fashion-mnist-lmdb.
python_env_lmdbs() {
  bin=$1
  fm=/usr/share/datasets/fashion-mnist
  dir=$CACHE/fashion-mnist-lmdb
  mkdir -p "$dir"
  for s in train:train test:t10k; do
    n=${s%%:*}; p=${s##*:}
    if [ ! -f "$dir/$n.done" ]; then
      rm -rf "$dir/fashion_mnist_${n}_lmdb"
      "$bin" convert-mnist "$fm/$p-images-idx3-ubyte.gz" "$fm/$p-labels-idx1-ubyte.gz" \
        "$dir/fashion_mnist_${n}_lmdb" >/dev/null || return 1
      touch "$dir/$n.done"
    fi
  done
  echo "$dir"
}
