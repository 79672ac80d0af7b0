#!/bin/sh
# Runs every built benchmark program (BUILD/bench/bench_*) on one crema
# thread (CREMA_NUM_THREADS, unless set; OpenBLAS runs inside crema's pool
# on one thread), from the repository root so ../shared resolves.
# usage: sh bench/run.sh BUILD_DIR
BUILD=${1:-build}
export OPENBLAS_NUM_THREADS=1
export CREMA_NUM_THREADS=${CREMA_NUM_THREADS:-1}
status=0
for b in "$BUILD"/bench/bench_*; do
    [ -x "$b" ] || continue
    echo "== $(basename "$b")"
    "$b" || status=1
    echo
done
exit $status
