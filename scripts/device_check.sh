#!/bin/sh
# The GPU device check: run from the repository root on the GPU machine with
# the package scripts/device_pack.sh made in .device/. It runs, on GPU 0:
#   1. the backend and family-table tests (CUDA against the CPU, entry by entry)
#   2. every golden layer and net case of ../shared/golden
#   3. the golden solver trajectories
#   4. LeNet on Fashion-MNIST for 10,000 iterations (Caffe's solver, batch 64)
#   5. the benchmark beside PyTorch eager (bench/bench_gpu.py)
#   6. compute-sanitizer memcheck over a short training run
# and writes $OUT/summary.txt (one line per step, then details), with each
# step's log beside it. Where there is no GPU it says so and exits 1.
# STEPS="1 2 3" runs only those steps.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-.device/out}
mkdir -p "$OUT"
S=$OUT/summary.txt
D=$PWD/.device
export LD_LIBRARY_PATH="$D/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CREMA_SHARED="$D/shared" CREMA_CUDA_PLUGIN="$D/lib/libcrema_cuda.so" CREMA_TEST_DEVICE=cuda:0
export CREMA_BIN="$D/bin/crema" CREMA_TMP=/tmp/crema-check OPENBLAS_NUM_THREADS=4 PYTHONUNBUFFERED=1
mkdir -p "$CREMA_TMP"
STEPS=${STEPS:-1 2 3 4 5 6}
: >"$S"
say() { echo "$*" | tee -a "$S"; }
want() { case " $STEPS " in *" $1 "*) return 0 ;; esac; return 1; }

say "device check $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)"
if [ ! -x "$D/bin/crema" ]; then
    say "no package: run scripts/device_pack.sh first"
    exit 1
fi
missing=$(ldd "$D"/bin/* "$D"/lib/*.so 2>/dev/null | grep 'not found' | sort -u)
[ -n "$missing" ] && say "MISSING LIBRARIES: $missing"
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
if ! "$D/bin/crema" device_query -gpu 0 >"$OUT/device_query.txt" 2>&1; then
    say "FAIL no CUDA device: $(tail -1 "$OUT/device_query.txt")"
    exit 1
fi
say "GPU: $gpu"
failed=0
step() { # name, status, detail
    say "$1: $2${3:+ -- $3}"
    [ "$2" = ok ] || failed=$((failed + 1))
}

if want 1; then
    : >"$OUT/tables.log"
    st=ok
    for t in "$D"/bin/test_backend "$D"/bin/test_ops_*; do
        [ -x "$t" ] || continue
        timeout 300 "$t" >>"$OUT/tables.log" 2>&1 || st=FAIL
    done
    step "1 tables (CUDA vs CPU)" $st "$(grep -cE '^ok ' "$OUT/tables.log") ok, $(grep -cE '^FAIL' "$OUT/tables.log") failed"
fi
if want 2; then
    timeout 600 "$D/bin/test_golden" >"$OUT/golden.log" 2>&1
    rc=$?
    step "2 golden layers+nets on GPU" "$([ $rc = 0 ] && echo ok || echo FAIL)" "$(tail -1 "$OUT/golden.log")"
fi
if want 3; then
    timeout 600 "$D/bin/test_golden_solvers" >"$OUT/solvers.log" 2>&1
    rc=$?
    step "3 golden solvers on GPU" "$([ $rc = 0 ] && echo ok || echo FAIL)" "$(tail -1 "$OUT/solvers.log")"
fi
if want 4; then
    W=/tmp/crema-lenet
    rm -rf $W && mkdir -p $W
    {
        "$D/bin/crema" convert-mnist "$D/data/train-images-idx3-ubyte.gz" "$D/data/train-labels-idx1-ubyte.gz" \
            $W/fashion_train_lmdb &&
            "$D/bin/crema" convert-mnist "$D/data/t10k-images-idx3-ubyte.gz" "$D/data/t10k-labels-idx1-ubyte.gz" \
                $W/fashion_test_lmdb
    } >"$OUT/train.log" 2>&1
    # Caffe's MNIST LeNet on one GPU: batch 64 (train) and 100 x 100 (test)
    sed -e "s|build/demo/fashion_train_lmdb\" batch_size: 32|$W/fashion_train_lmdb\" batch_size: 64|" \
        -e "s|build/demo/fashion_test_lmdb\" batch_size: 50|$W/fashion_test_lmdb\" batch_size: 100|" \
        demo/lenet_train_test.prototxt >$W/net.prototxt
    sed -e "s|^net: .*|net: \"$W/net.prototxt\"|" -e "s|^snapshot_prefix: .*|snapshot_prefix: \"$W/lenet\"|" \
        -e "s|^solver_mode: .*|solver_mode: GPU|" demo/lenet_solver.prototxt >$W/solver.prototxt
    t0=$(date +%s)
    timeout 900 "$D/bin/crema" train -solver $W/solver.prototxt -gpu 0 >>"$OUT/train.log" 2>&1
    rc=$?
    t1=$(date +%s)
    acc=$(grep "Test net output #0: accuracy" "$OUT/train.log" | tail -1 | sed 's/.*accuracy = //')
    ok=$(awk -v a="${acc:-0}" 'BEGIN{print (a >= 0.895) ? "ok" : "FAIL"}')
    [ $rc = 0 ] || ok=FAIL
    step "4 LeNet Fashion-MNIST 10000 iterations on GPU" "$ok" "test accuracy ${acc:-none} (>= 0.895; Caffe 0.899), $((t1 - t0)) s"
fi
if want 5; then
    CREMA_BENCH_GPU="$D/bin/bench_gpu" timeout 900 python3 bench/bench_gpu.py \
        --precision "${BENCH_PRECISION:-fp32,tf32}" --nets "${BENCH_NETS:-lenet,cifar10_quick,caffenet}" \
        >"$OUT/bench.log" 2>&1
    rc=$?
    step "5 benchmark beside PyTorch" "$([ $rc = 0 ] && echo ok || echo FAIL)" "table below"
fi
if want 6; then
    W=/tmp/crema-lenet
    if [ -f $W/solver.prototxt ]; then
        sed -e "s|^test_interval: .*|test_interval: 10|" -e "s|^test_iter: .*|test_iter: 2|" \
            -e "s|^snapshot: .*|snapshot: 10|" $W/solver.prototxt >$W/solver_short.prototxt
        timeout 600 compute-sanitizer --tool memcheck --leak-check full --error-exitcode 9 \
            "$D/bin/crema" train -solver $W/solver_short.prototxt -gpu 0 -iterations 20 >"$OUT/sanitizer.log" 2>&1
        rc=$?
        summary=$(grep -E 'ERROR SUMMARY' "$OUT/sanitizer.log" | tail -1)
        step "6 compute-sanitizer memcheck (20 iterations)" "$([ $rc = 0 ] && echo ok || echo FAIL)" \
            "${summary:-no summary (rc $rc)}"
    else
        step "6 compute-sanitizer memcheck" FAIL "needs step 4's data"
    fi
fi
{
    echo
    echo "== failures and worst errors =="
    grep -hE '^FAIL|also:|worst' "$OUT"/golden.log "$OUT"/solvers.log 2>/dev/null | head -60
    grep -hE '^FAIL|    .*test_' "$OUT"/tables.log 2>/dev/null | head -40
    echo
    echo "== layers on the CPU =="
    grep -h 'runs on the CPU' "$OUT"/train.log "$OUT"/golden.log 2>/dev/null | sort | uniq -c | head -40
    echo
    echo "== benchmark =="
    cat "$OUT/bench.log" 2>/dev/null
} >>"$S"
say "device check: $failed step(s) failed"
[ $failed = 0 ]
