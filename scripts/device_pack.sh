#!/bin/sh
# Packages what the GPU machine needs for scripts/device_check.sh into .device/
# (ignored by git; ../shared/GPU.md says what that machine lacks):
#   .device/bin      crema, the GPU tests and bench_gpu, linked to libcrema.so
#   .device/lib      libcrema.so, libcrema_cuda.so and the libraries the GPU
#                    machine does not have (protobuf-c, LMDB, LevelDB, snappy,
#                    Gloo and its ibverbs and hiredis, libjpeg62)
#   .device/shared   the golden cases and benchmark nets the check reads
#   .device/data     Fashion-MNIST (Debian's dataset-fashion-mnist), gzipped IDX
# Run here (where CUDA compiles); the run there carries .device.
set -eu
cd "$(dirname "$0")/.."
SHARED=${CREMA_SHARED:-../shared}
B=build-device
cmake -S . -B $B -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCREMA_LINK_SHARED=ON >/dev/null
TESTS="test_backend test_golden test_golden_solvers test_golden_models test_dist_device test_dist_train"
for f in tests/test_ops_*.c; do [ -f "$f" ] && TESTS="$TESTS $(basename "$f" .c)"; done
make --no-print-directory -C $B -j"$(nproc)" crema crema_shared crema_cuda bench_gpu $TESTS >/dev/null
rm -rf .device
mkdir -p .device/bin .device/lib .device/shared/golden .device/shared/bench .device/data
cp $B/bin/crema $B/bench/bench_gpu .device/bin/
for t in $TESTS; do cp $B/$t .device/bin/; done
cp $B/lib/libcrema.so $B/lib/libcrema_cuda.so .device/lib/
strip --strip-unneeded .device/bin/* .device/lib/*
# The libraries the binaries need that the GPU machine lacks (GPU.md: it has
# glibc, CUDA, OpenBLAS, libpng, HDF5; not these), with their own needs.
ldd .device/bin/* .device/lib/*.so | awk '/=> \//{print $3}' | sort -u |
    grep -E 'protobuf-c|lmdb|leveldb|snappy|gloo|hiredis|libjpeg\.so\.62|libibverbs|libnl-' |
    while read -r lib; do cp -L "$lib" .device/lib/; done
# what the check reads
cp -r "$SHARED/golden/layers" "$SHARED/golden/nets" "$SHARED/golden/solvers" "$SHARED/golden/models" \
    "$SHARED/golden/README.md" .device/shared/golden/
cp "$SHARED"/bench/*.prototxt .device/shared/bench/
cp /usr/share/datasets/fashion-mnist/*.gz .device/data/
du -sh .device | awk '{print "device package: " $1}'
