#!/bin/sh
# crema train end to end: a golden case's numbers on the command line,
# SIGHUP snapshots and SIGINT stops (Caffe's default effects, and -none),
# -iterations, resume with -snapshot, one-line errors with exit status 1.
set -u
NAME=solver_cli
. "$(dirname "$0")/cli_testing.sh"
CASE=$SHARED/golden/solvers/sgd_momentum_step

# The golden case, snapshots redirected to $TMP (never into the case folder).
sed "s|snapshot_prefix: \"snap\"|snapshot_prefix: \"$TMP/g\"|; s|net: \"net.prototxt\"|net: \"$CASE/net.prototxt\"|" \
    "$CASE/solver.prototxt" >"$TMP/golden_solver.prototxt"
(cd "$CASE" && "$BIN" train -solver "$TMP/golden_solver.prototxt" -weights init.caffemodel) 2>"$TMP/golden.log"
[ $? -eq 0 ] && ok || fail "golden run failed: $(tail -1 "$TMP/golden.log")"
grep -q "^Iteration 5, lr = 0.025$" "$TMP/golden.log" && ok || fail "no 'Iteration 5, lr = 0.025'"
grep -q "^    Train net output #0: loss = 0.475475 (\* 1 = 0.475475 loss)$" "$TMP/golden.log" && ok ||
    fail "no Caffe's iteration-4 loss line"
grep -q "^Snapshotting solver state to binary proto file $TMP/g_iter_6.solverstate$" "$TMP/golden.log" && ok ||
    fail "no solver state line"
grep -q "^Iteration 6, loss = 0.657877$" "$TMP/golden.log" && ok || fail "final loss differs from Caffe's"
grep -q "^Optimization Done.$" "$TMP/golden.log" && ok || fail "no Optimization Done."
[ -f "$TMP/g_iter_6.caffemodel" ] && ok || fail "no final snapshot"

# -iterations overrides max_iter; -snapshot resumes.
(cd "$CASE" && "$BIN" train -solver "$TMP/golden_solver.prototxt" -weights init.caffemodel -iterations 2) \
    2>"$TMP/short.log"
grep -q "^Iteration 2, loss = " "$TMP/short.log" && ok || fail "-iterations 2 did not stop at 2"
(cd "$CASE" && "$BIN" train -solver "$TMP/golden_solver.prototxt" -snapshot "$TMP/g_iter_2.solverstate") \
    2>"$TMP/resume.log"
grep -q "^Iteration 6, loss = 0.657877$" "$TMP/resume.log" && ok ||
    fail "resume from iteration 2 did not reach Caffe's final loss: $(grep 'Iteration 6, loss' "$TMP/resume.log")"

# Signals: a long run; SIGHUP snapshots and goes on, SIGINT stops (and the
# run snapshots after train, as Caffe).
sed "s|max_iter: 6|max_iter: 100000000|; s|snapshot: 1|snapshot: 0|; s|display: 1|display: 0|; s|$TMP/g|$TMP/sig|" \
    "$TMP/golden_solver.prototxt" >"$TMP/long_solver.prototxt"
(cd "$CASE" && exec "$BIN" train -solver "$TMP/long_solver.prototxt" -weights init.caffemodel) 2>"$TMP/sig.log" &
pid=$!
for i in $(seq 50); do grep -q "Learning Rate Policy" "$TMP/sig.log" && break; sleep 0.1; done
sleep 0.3
kill -HUP $pid
for i in $(seq 50); do ls "$TMP"/sig_iter_*.solverstate >/dev/null 2>&1 && break; sleep 0.1; done
ls "$TMP"/sig_iter_*.solverstate >/dev/null 2>&1 && ok || fail "SIGHUP did not snapshot"
kill -0 $pid 2>/dev/null && ok || fail "SIGHUP ended the run"
kill -INT $pid
wait $pid
rc=$?
[ $rc -eq 0 ] && ok || fail "SIGINT stop: exit status $rc"
grep -q "^Optimization stopped early.$" "$TMP/sig.log" && ok || fail "no 'Optimization stopped early.'"
[ "$(ls "$TMP"/sig_iter_*.caffemodel | wc -l)" -eq 2 ] && ok || fail "expected the SIGHUP and the final snapshot"

# -sigint_effect none: SIGINT is ignored.
(cd "$CASE" && exec "$BIN" train -solver "$TMP/long_solver.prototxt" -weights init.caffemodel \
    -sigint_effect none -sighup_effect stop) 2>"$TMP/none.log" &
pid=$!
for i in $(seq 50); do grep -q "Learning Rate Policy" "$TMP/none.log" && break; sleep 0.1; done
kill -INT $pid
sleep 0.5
kill -0 $pid 2>/dev/null && ok || fail "-sigint_effect none: SIGINT ended the run"
kill -HUP $pid
wait $pid
[ $? -eq 0 ] && ok || fail "-sighup_effect stop did not stop cleanly"

# Errors: one line, status 1.
"$BIN" train 2>"$TMP/e1"
[ $? -eq 1 ] && [ "$(wc -l <"$TMP/e1")" -eq 1 ] && ok || fail "no -solver: $(cat "$TMP/e1")"
"$BIN" train -solver "$TMP/missing.prototxt" 2>"$TMP/e2"
[ $? -eq 1 ] && grep -q "missing.prototxt" "$TMP/e2" && ok || fail "missing solver: $(cat "$TMP/e2")"
"$BIN" train -solver "$TMP/golden_solver.prototxt" -weights a -snapshot b 2>"$TMP/e3"
[ $? -eq 1 ] && grep -q "not both" "$TMP/e3" && ok || fail "weights+snapshot: $(cat "$TMP/e3")"
"$BIN" train -solver "$TMP/golden_solver.prototxt" -sigint_effect bogus 2>"$TMP/e4"
[ $? -eq 1 ] && ok || fail "bad -sigint_effect accepted"

echo "solver_cli: $checks checks, $fails failed"
[ $fails -eq 0 ]
