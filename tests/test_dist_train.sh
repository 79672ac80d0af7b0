#!/bin/sh
# Distributed `crema train` failures: a rank killed with SIGKILL mid-training
# (the other rank exits within 30 s naming it; the -clusterSize launcher
# names it too), resuming from rank 0's snapshot, and bad configurations
# (wrong secret, rank out of range, mismatched solver or net) failing with a
# clear message within seconds, never hanging. Also CaffeOnSpark's
# -clusterSize form.
set -u
BIN=${CREMA_BIN:-build/bin/crema}
TMP=${CREMA_TMP:-build/tmp}/dist_train_sh.$$
DATA=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
[ -f "$DATA/t10k-images-idx3-ubyte.gz" ] || { echo "skipped: no Fashion-MNIST at $DATA"; exit 77; }
rm -rf "$TMP"
mkdir -p "$TMP"
TMP=$(cd "$TMP" && pwd)
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
export OPENBLAS_NUM_THREADS=1
fails=0
checks=0
ok() { checks=$((checks + 1)); }
fail() {
    checks=$((checks + 1))
    fails=$((fails + 1))
    echo "FAIL: $*"
}
now() { date +%s; }
port() { echo $((20000 + ($$ * 7 + $1) % 40000)); }

"$BIN" convert-mnist "$DATA/t10k-images-idx3-ubyte.gz" "$DATA/t10k-labels-idx1-ubyte.gz" "$TMP/lmdb" \
    >"$TMP/convert.log" 2>&1 || { echo "FAIL: convert-mnist: $(tail -1 "$TMP/convert.log")"; exit 1; }

# A small LeNet-like net; $1: where, $2: batch.
write_net() {
    cat >"$1" <<EOF
name: "small"
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { scale: 0.00390625 } data_param { source: "$TMP/lmdb" batch_size: $2 backend: LMDB } }
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TEST }
  transform_param { scale: 0.00390625 } data_param { source: "$TMP/lmdb" batch_size: 50 backend: LMDB } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1"
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "ip1" bottom: "label" top: "accuracy" include { phase: TEST } }
EOF
}
# $1: solver file, $2: net file, $3: snapshot prefix, $4: max_iter
write_solver() {
    cat >"$1" <<EOF
net: "$2"
test_iter: 2
test_interval: 1000
base_lr: 0.01
momentum: 0.9
lr_policy: "fixed"
display: 0
max_iter: $4
snapshot: 20
snapshot_prefix: "$3"
random_seed: 3
EOF
}
write_net "$TMP/net.prototxt" 8
write_solver "$TMP/long.prototxt" "$TMP/net.prototxt" "$TMP/kill" 100000000

# ---- a rank killed with SIGKILL, ranks started by hand ----
P=$(port 1)
"$BIN" train -solver "$TMP/long.prototxt" -rank 0 -clusterSize 2 -rendezvous "tcp://127.0.0.1:$P" -secret k \
    -dist_timeout 10 2>"$TMP/kill0.log" &
pid0=$!
"$BIN" train -solver "$TMP/long.prototxt" -rank 1 -clusterSize 2 -rendezvous "tcp://127.0.0.1:$P" -secret k \
    -dist_timeout 10 2>"$TMP/kill1.log" &
pid1=$!
for i in $(seq 600); do ls "$TMP"/kill_iter_40.solverstate >/dev/null 2>&1 && break; sleep 0.1; done
if [ -f "$TMP/kill_iter_40.solverstate" ]; then ok; else fail "no snapshot at iteration 40 within 60 s"; fi
kill -9 $pid1
t0=$(now)
wait $pid0
rc0=$?
t1=$(now)
wait $pid1 2>/dev/null
[ $rc0 -ne 0 ] && ok || fail "rank 0 exited 0 after rank 1 was killed"
[ $((t1 - t0)) -le 30 ] && ok || fail "rank 0 took $((t1 - t0)) s (> 30 s) to notice"
grep -q "lost rank 1" "$TMP/kill0.log" && ok || fail "rank 0's message does not name rank 1: $(tail -1 "$TMP/kill0.log")"
echo "killed rank 1: rank 0 exited $rc0 after $((t1 - t0)) s: $(grep 'lost rank' "$TMP/kill0.log" | tail -1)"
ls "$TMP"/kill_iter_*.solverstate >/dev/null 2>&1 || true
last=$(ls "$TMP"/kill_iter_*.solverstate 2>/dev/null | sed 's/.*_iter_\([0-9]*\)\.solverstate/\1/' | sort -n | tail -1)

# ---- resuming from rank 0's last snapshot finishes the run ----
if [ -n "$last" ]; then
    target=$((last + 30))
    "$BIN" train -solver "$TMP/long.prototxt" -clusterSize 2 -snapshot "$TMP/kill_iter_$last.solverstate" \
        -iterations $target -dist_timeout 10 2>"$TMP/resume.log"
    rc=$?
    [ $rc -eq 0 ] && ok || fail "resume from iteration $last exited $rc: $(tail -2 "$TMP/resume.log")"
    grep -q "Restoring previous solver status from $TMP/kill_iter_$last.solverstate" "$TMP/resume.log" && ok ||
        fail "the resumed run did not restore"
    [ -f "$TMP/kill_iter_$target.caffemodel" ] && ok || fail "the resumed run wrote no kill_iter_$target.caffemodel"
    echo "resumed from iteration $last to $target: exit $rc"
else
    fail "no snapshot to resume from"
fi

# ---- the launcher names a rank killed under it ----
"$BIN" train -solver "$TMP/long.prototxt" -clusterSize 2 -dist_timeout 10 2>"$TMP/launch_kill.log" &
lp=$!
child=""
for i in $(seq 100); do
    child=$(ps -o pid= --ppid $lp 2>/dev/null | tail -1 | tr -d ' ')
    [ -n "$child" ] && grep -q "Starting Optimization" "$TMP/launch_kill.log" && break
    sleep 0.1
done
sleep 1
t0=$(now)
[ -n "$child" ] && kill -9 "$child"
wait $lp
rc=$?
t1=$(now)
[ $rc -ne 0 ] && ok || fail "the launcher exited 0 after a rank was killed"
[ $((t1 - t0)) -le 30 ] && ok || fail "the launcher took $((t1 - t0)) s"
grep -q "rank 1 was killed by signal 9" "$TMP/launch_kill.log" && ok ||
    fail "the launcher did not name rank 1: $(tail -2 "$TMP/launch_kill.log")"
grep -q "rank 0: lost rank 1" "$TMP/launch_kill.log" && ok ||
    fail "rank 0 did not name rank 1: $(grep rank "$TMP/launch_kill.log" | tail -3)"

# ---- signals sent to the launcher alone reach the ranks ----
# $1: what to wait for in the log before going on
launch_long() {
    "$BIN" train -solver "$TMP/long.prototxt" -clusterSize 2 -dist_timeout 10 2>"$TMP/launch_sig.log" &
    lp=$!
    for i in $(seq 300); do grep -q "Starting Optimization" "$TMP/launch_sig.log" && break; sleep 0.1; done
    sleep 1
}
launch_long
rm -f "$TMP"/kill_iter_*.solverstate
kill -HUP $lp # sighup_effect snapshot: rank 0 snapshots, training goes on
for i in $(seq 100); do ls "$TMP"/kill_iter_*.solverstate >/dev/null 2>&1 && break; sleep 0.1; done
ls "$TMP"/kill_iter_*.solverstate >/dev/null 2>&1 && ok || fail "SIGHUP to the launcher made no snapshot"
kill -0 $lp 2>/dev/null && ok || fail "the job ended after SIGHUP (the effect is snapshot)"
kill -INT $lp # sigint_effect stop: every rank stops
t0=$(now)
for i in $(seq 300); do kill -0 $lp 2>/dev/null || break; sleep 0.1; done
if kill -0 $lp 2>/dev/null; then
    fail "SIGINT to the launcher alone: the ranks trained on for 30 s"
    pkill -KILL -P $lp
    kill -9 $lp
fi
wait $lp
rc=$?
[ $rc -eq 0 ] && ok || fail "the launcher exited $rc after SIGINT (expected a clean stop)"
grep -q "Optimization stopped early." "$TMP/launch_sig.log" && ok || fail "no 'Optimization stopped early.' after SIGINT"

# ---- a rank that hangs: the job ends within -dist_timeout 10 (+10 %) ----
launch_long
child=$(ps -o pid= --ppid $lp 2>/dev/null | tail -1 | tr -d ' ')
t0=$(date +%s.%N)
kill -STOP "$child"
wait $lp
rc=$?
t1=$(date +%s.%N)
kill -CONT "$child" 2>/dev/null
took=$(echo "$t1 $t0" | awk '{printf "%.2f", $1 - $2}')
echo "a stopped rank under the launcher, -dist_timeout 10: the job ended after $took s"
[ $rc -ne 0 ] && ok || fail "the launcher exited 0 with a rank stopped"
echo "$took" | awk '{exit !($1 <= 11.0)}' && ok || fail "with -dist_timeout 10 the job ended after $took s (> 11)"
grep -q "silent for" "$TMP/launch_sig.log" && ok || fail "no rank named the silent rank: $(tail -2 "$TMP/launch_sig.log")"

# ---- bad configurations: an error within seconds, never a hang ----
write_solver "$TMP/short.prototxt" "$TMP/net.prototxt" "$TMP/short" 5
# $1: name, $2: expected text, $3: max seconds; the ranks' commands follow as "A" "B" (B may be empty)
expect_fail() {
    name=$1 want=$2 limit=$3
    t0=$(now)
    sh -c "$4" >"$TMP/$name.0.log" 2>&1 &
    a=$!
    rb=0
    if [ -n "$5" ]; then
        sh -c "$5" >"$TMP/$name.1.log" 2>&1
        rb=$?
    fi
    wait $a
    ra=$?
    t1=$(now)
    cat "$TMP/$name".*.log >"$TMP/$name.all"
    [ $ra -ne 0 ] || [ $rb -ne 0 ] && ok || fail "$name: every rank exited 0"
    [ $((t1 - t0)) -le "$limit" ] && ok || fail "$name: took $((t1 - t0)) s (more than $limit)"
    grep -q "$want" "$TMP/$name.all" && ok || fail "$name: no \"$want\" in: $(cat "$TMP/$name.all" | tail -3)"
    echo "$name: $((t1 - t0)) s: $(grep -h "$want" "$TMP/$name.all" | head -1)"
}
S="$BIN train -solver $TMP/short.prototxt -clusterSize 2 -dist_timeout 5"
P=$(port 2)
expect_fail wrong_secret "secret" 15 "$S -rank 0 -rendezvous tcp://127.0.0.1:$P -secret right" \
    "$S -rank 1 -rendezvous tcp://127.0.0.1:$P -secret wrong"
expect_fail rank_range "rank 2 is out of range for a job of 2 ranks" 5 \
    "$S -rank 2 -rendezvous tcp://127.0.0.1:$P -secret s" ""
expect_fail size_one_rank "rank 1 is out of range" 5 "$BIN train -solver $TMP/short.prototxt -rank 1" ""
P=$(port 3)
sed 's/base_lr: 0.01/base_lr: 0.02/' "$TMP/short.prototxt" >"$TMP/other_solver.prototxt"
expect_fail other_solver "rank 1 has a different solver definition than rank 0" 15 \
    "$S -rank 0 -rendezvous tcp://127.0.0.1:$P -secret s" \
    "$BIN train -solver $TMP/other_solver.prototxt -clusterSize 2 -dist_timeout 5 -rank 1 -rendezvous tcp://127.0.0.1:$P -secret s"
# the same solver text naming "net.prototxt" from two folders with different nets
mkdir -p "$TMP/a" "$TMP/b"
write_net "$TMP/a/net.prototxt" 8
write_net "$TMP/b/net.prototxt" 9
write_solver "$TMP/a/s.prototxt" net.prototxt "$TMP/rel" 5
cp "$TMP/a/s.prototxt" "$TMP/b/s.prototxt"
P=$(port 4)
expect_fail other_net "rank 1 has a different train net than rank 0" 15 \
    "cd $TMP/a && $BIN train -solver s.prototxt -clusterSize 2 -dist_timeout 5 -rank 0 -rendezvous tcp://127.0.0.1:$P -secret s" \
    "cd $TMP/b && $BIN train -solver s.prototxt -clusterSize 2 -dist_timeout 5 -rank 1 -rendezvous tcp://127.0.0.1:$P -secret s"
P=$(port 5)
expect_fail no_peer "timed out" 20 "$S -rank 0 -rendezvous tcp://127.0.0.1:$P -secret s" ""
expect_fail bad_connection "expected ethernet or infiniband" 5 "$S -connection token-ring" ""

# ---- CaffeOnSpark's form: -clusterSize 2 trains on two ranks ----
"$BIN" -train -conf "$TMP/short.prototxt" -model "file:$TMP/cos.caffemodel" -clusterSize 2 2>"$TMP/cos.log"
rc=$?
[ $rc -eq 0 ] && ok || fail "crema -train -clusterSize 2 exited $rc: $(tail -2 "$TMP/cos.log")"
[ -f "$TMP/cos.caffemodel" ] && ok || fail "crema -train -clusterSize 2 wrote no model"
grep -q "Rank 0 of 2" "$TMP/cos.log" && ok || fail "crema -train -clusterSize 2 did not run 2 ranks"

echo "$checks checks, $fails failed"
[ $fails -eq 0 ] && rm -rf "$TMP"
[ $fails -eq 0 ]
