#!/bin/sh
# The GPU device check: run from the repository root on the GPU machine with
# the package scripts/device_pack.sh made in .device/. It runs, on GPU 0:
#   1. the backend and family-table tests (CUDA against the CPU, entry by entry)
#   2. every golden layer and net case of ../shared/golden
#   3. the golden solver trajectories
#   4. LeNet on Fashion-MNIST for 10,000 iterations (Caffe's solver, batch 64)
#   5. the benchmark beside PyTorch eager (bench/bench_gpu.py)
#   6. compute-sanitizer memcheck over a short training run
#   7. ranks: one rank through NCCL and two ranks sharing the GPU (host
#      collectives) train to the weights of one rank with the doubled batch;
#      a rank killed with SIGKILL ends the other within seconds
# and writes $OUT/summary.txt (one line per step, then details), with each
# step's log beside it (or in $LOGS). Where there is no GPU it says so and
# exits 1. STEPS="1 2 3" runs only those steps (always in the order 1 2 3 4
# 6 5 7: what part 1 of the GPU issue accepts on first).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-.device/out}
mkdir -p "$OUT"
S=$OUT/summary.txt
# the logs (the summary stays in $OUT)
LOGS=${LOGS:-$OUT}
mkdir -p "$LOGS"
D=$PWD/.device
export LD_LIBRARY_PATH="$D/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CREMA_SHARED="$D/shared" CREMA_CUDA_PLUGIN="$D/lib/libcrema_cuda.so" CREMA_TEST_DEVICE=cuda:0
export CREMA_BIN="$D/bin/crema" CREMA_TMP=/tmp/crema-check OPENBLAS_NUM_THREADS=4 PYTHONUNBUFFERED=1
mkdir -p "$CREMA_TMP"
STEPS=${STEPS:-1 2 3 4 5 6 7}
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
if ! "$D/bin/crema" device_query -gpu 0 >"$LOGS/device_query.txt" 2>&1; then
    say "FAIL no CUDA device: $(tail -1 "$LOGS/device_query.txt")"
    exit 1
fi
say "GPU: $gpu"
failed=0
step() { # name, status, detail
    say "$1: $2${3:+ -- $3}"
    [ "$2" = ok ] || failed=$((failed + 1))
}

if want 1; then
    : >"$LOGS/tables.log"
    st=ok
    for t in "$D"/bin/test_backend "$D"/bin/test_ops_* "$D"/bin/test_dist_device; do
        [ -x "$t" ] || continue
        timeout 60 "$t" >>"$LOGS/tables.log" 2>&1 || st=FAIL
    done
    step "1 tables (CUDA vs CPU)" $st "$(grep -cE '^ok ' "$LOGS/tables.log") ok, $(grep -cE '^FAIL' "$LOGS/tables.log") failed"
fi
if want 2; then
    timeout 90 "$D/bin/test_golden" >"$LOGS/golden.log" 2>&1
    rc=$?
    step "2 golden layers+nets on GPU" "$([ $rc = 0 ] && echo ok || echo FAIL)" "$(tail -1 "$LOGS/golden.log")"
fi
if want 3; then
    timeout 90 "$D/bin/test_golden_solvers" >"$LOGS/solvers.log" 2>&1
    rc=$?
    step "3 golden solvers on GPU" "$([ $rc = 0 ] && echo ok || echo FAIL)" "$(tail -1 "$LOGS/solvers.log")"
fi
if want 4; then
    W=/tmp/crema-lenet
    rm -rf $W && mkdir -p $W
    {
        "$D/bin/crema" convert-mnist "$D/data/train-images-idx3-ubyte.gz" "$D/data/train-labels-idx1-ubyte.gz" \
            $W/fashion_train_lmdb &&
            "$D/bin/crema" convert-mnist "$D/data/t10k-images-idx3-ubyte.gz" "$D/data/t10k-labels-idx1-ubyte.gz" \
                $W/fashion_test_lmdb
    } >"$LOGS/train.log" 2>&1
    # Caffe's MNIST LeNet on one GPU: batch 64 (train) and 100 x 100 (test)
    sed -e "s|build/demo/fashion_train_lmdb\" batch_size: 32|$W/fashion_train_lmdb\" batch_size: 64|" \
        -e "s|build/demo/fashion_test_lmdb\" batch_size: 50|$W/fashion_test_lmdb\" batch_size: 100|" \
        demo/lenet_train_test.prototxt >$W/net.prototxt
    sed -e "s|^net: .*|net: \"$W/net.prototxt\"|" -e "s|^snapshot_prefix: .*|snapshot_prefix: \"$W/lenet\"|" \
        -e "s|^solver_mode: .*|solver_mode: GPU|" demo/lenet_solver.prototxt >$W/solver.prototxt
    t0=$(date +%s)
    timeout 240 "$D/bin/crema" train -solver $W/solver.prototxt -gpu 0 >>"$LOGS/train.log" 2>&1
    rc=$?
    t1=$(date +%s)
    acc=$(grep "Test net output #0: accuracy" "$LOGS/train.log" | tail -1 | sed 's/.*accuracy = //')
    ok=$(awk -v a="${acc:-0}" 'BEGIN{print (a >= 0.895) ? "ok" : "FAIL"}')
    [ $rc = 0 ] || ok=FAIL
    step "4 LeNet Fashion-MNIST 10000 iterations on GPU" "$ok" "test accuracy ${acc:-none} (>= 0.895; Caffe 0.899), $((t1 - t0)) s"
fi
if want 6; then
    W=/tmp/crema-lenet
    if [ -f $W/solver.prototxt ]; then
        sed -e "s|^test_interval: .*|test_interval: 10|" -e "s|^test_iter: .*|test_iter: 2|" \
            -e "s|^snapshot: .*|snapshot: 10|" $W/solver.prototxt >$W/solver_short.prototxt
        timeout 120 compute-sanitizer --tool memcheck --leak-check full --error-exitcode 9 \
            "$D/bin/crema" train -solver $W/solver_short.prototxt -gpu 0 -iterations 20 >"$LOGS/sanitizer.log" 2>&1
        rc=$?
        summary=$(grep -E 'ERROR SUMMARY' "$LOGS/sanitizer.log" | tail -1)
        step "6 compute-sanitizer memcheck (20 iterations)" "$([ $rc = 0 ] && echo ok || echo FAIL)" \
            "${summary:-no summary (rc $rc)}"
    else
        step "6 compute-sanitizer memcheck" FAIL "needs step 4's data"
    fi
fi
if want 5; then
    CREMA_CUDNN_FIND=1 CREMA_BENCH_GPU="$D/bin/bench_gpu" timeout 180 python3 bench/bench_gpu.py \
        --precision "${BENCH_PRECISION:-fp32,tf32}" --nets "${BENCH_NETS:-lenet,cifar10_quick,caffenet,resnet50}" \
        >"$LOGS/bench.log" 2>&1
    rc=$?
    step "5 benchmark beside PyTorch" "$([ $rc = 0 ] && echo ok || echo FAIL)" "table below"
    # what the Data layer (LMDB, host prefetch) costs the GPU: LeNet fed by it
    # against LeNet on constant data, same iteration otherwise
    if [ -f /tmp/crema-lenet/net.prototxt ]; then
        CREMA_BENCH_LENET_LMDB=/tmp/crema-lenet/net.prototxt timeout 60 "$D/bin/bench_gpu" lenet lenet_lmdb \
            >>"$LOGS/bench.log" 2>&1
        say "5b data layer: $(grep '^crema lenet' "$LOGS/bench.log" | awk '{printf "%s %s ms/iter; ", $2, $4}')"
    fi
fi
if want 7; then
    W=/tmp/crema-lenet
    # 2 ranks x batch 8 == 1 rank x batch 16 with -gpu 0 (both ranks on the
    # one GPU: NCCL cannot pair them, so the sums go through the host)
    FASHION_MNIST="$D/data" CREMA_TEST_TRAIN_ARGS="-gpu 0" timeout 90 "$D/bin/test_dist_train" \
        test_two_ranks_equal_one_rank_double_batch test_many_buckets >"$LOGS/dist.log" 2>&1
    rc=$?
    step "7a two ranks on one GPU (host sums) = one rank, double batch" "$([ $rc = 0 ] && echo ok || echo FAIL)" \
        "$(grep -E 'worst relative' "$LOGS/dist.log" | head -2 | tr '\n' ' ')"
    say "7b one rank through NCCL = alone: $(grep -E 'one rank' "$LOGS/tables.log" | head -1)"
    if [ -f $W/solver.prototxt ]; then
        sed -e "s|^max_iter: .*|max_iter: 100000000|" -e "s|^test_interval: .*|test_interval: 100000000|" \
            -e "s|^snapshot: .*|snapshot: 0|" -e "s|^display: .*|display: 20|" $W/solver.prototxt >$W/long.prototxt
        P=$((20000 + $$ % 20000))
        "$D/bin/crema" train -solver $W/long.prototxt -rank 0 -clusterSize 2 -rendezvous tcp://127.0.0.1:$P \
            -secret k -dist_timeout 10 -gpu 0 >"$LOGS/kill0.log" 2>&1 &
        p0=$!
        "$D/bin/crema" train -solver $W/long.prototxt -rank 1 -clusterSize 2 -rendezvous tcp://127.0.0.1:$P \
            -secret k -dist_timeout 10 -gpu 0 >/dev/null 2>&1 &
        p1=$!
        for i in $(seq 300); do grep -q "Iteration 100" "$LOGS/kill0.log" && break; sleep 0.1; done
        kill -9 $p1
        t0=$(date +%s.%N)
        ( sleep 30; kill -9 $p0 2>/dev/null ) &
        wait $p0
        rc=$?
        t1=$(date +%s.%N)
        secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b - a}')
        named=$(grep -c "lost rank 1\|rank 1" "$LOGS/kill0.log")
        ok=$(awk -v s="$secs" -v r=$rc -v n="$named" 'BEGIN{print (r != 0 && s < 15 && n > 0) ? "ok" : "FAIL"}')
        step "7c rank 1 killed: rank 0 ends" "$ok" "after $secs s, exit $rc: $(grep -i 'rank 1' "$LOGS/kill0.log" | tail -1)"
    fi
fi
{
    echo
    echo "== failures and worst errors =="
    grep -hE '^FAIL|also:|worst' "$LOGS"/golden.log "$LOGS"/solvers.log 2>/dev/null | head -60
    grep -hE '^FAIL|    .*test_' "$LOGS"/tables.log 2>/dev/null | head -40
    echo
    echo "== layers on the CPU =="
    grep -h 'runs on the CPU' "$LOGS"/train.log "$LOGS"/golden.log 2>/dev/null | sort | uniq -c | head -40
    echo
    echo "== benchmark =="
    cat "$LOGS/bench.log" 2>/dev/null
} >>"$S"
say "device check: $failed step(s) failed"
[ $failed = 0 ]
