#!/bin/sh
# Installs what crema needs to build and test, from Debian and PyPI.
# Idempotent and quiet: it does nothing when everything is already present.
set -eu

APT_PACKAGES="cmake make gcc g++ clang pkg-config libclang-rt-14-dev
protobuf-c-compiler protobuf-compiler libprotobuf-c-dev libprotobuf-dev libopenblas-dev liblmdb-dev lmdb-utils
libleveldb-dev libhdf5-dev hdf5-tools libjpeg62-turbo-dev libpng-dev
libgloo-dev dataset-fashion-mnist valgrind iproute2 python3-venv openjdk-17-jre-headless"

missing=""
for p in $APT_PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    echo "deps: installing$missing"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

PY=${PYTHON:-python3}
PIP_PACKAGES="numpy tensorboard"
for p in $PIP_PACKAGES; do
    if ! $PY -c "import $p" 2>/dev/null; then
        echo "deps: pip installing $p"
        $PY -m pip install -q --disable-pip-version-check --root-user-action=ignore "$p"
    fi
done

# The caffe package (pycaffe's interface): protobuf's runtime for caffe_pb2
# (made by protoc, protobuf-compiler above), scikit-image and scipy for
# caffe.io's images, pydot for caffe.draw, as pycaffe uses them.
# crema.spark: pyspark 3.5.x, the Spark line that supports Java 17 (the JDK
# Debian 12 ships) and has DataFrame.mapInArrow(barrier=True) (new in 3.5);
# its Arrow path needs pyarrow and pandas 2. "module spec check" lines:
# installed when the check fails (missing, or off the pin).
while read -r mod spec check; do
    [ -z "$mod" ] && continue
    if ! $PY -c "$check" 2>/dev/null; then
        echo "deps: pip installing $spec"
        $PY -m pip install -q --disable-pip-version-check --root-user-action=ignore "$spec"
    fi
done <<'PIPS'
protobuf protobuf>=3.20 import google.protobuf
skimage scikit-image import skimage
scipy scipy import scipy
pydot pydot import pydot
pyspark pyspark==3.5.7 import pyspark,sys;sys.exit(pyspark.__version__!="3.5.7")
pyarrow pyarrow>=14,<20 import pyarrow
pandas pandas>=2,<3 import pandas
PIPS
