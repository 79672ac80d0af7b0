#!/bin/sh
# crema upgrade-net / upgrade-solver end to end: formats picked by name or
# flag, a second run changes nothing, Caffe's exit codes, readable errors.
set -u
NAME=upgrade_cli
. "$(dirname "$0")/cli_testing.sh"
hasnt() { if grep -q -- "$2" "$1"; then fail "$1 should not contain \"$2\""; else ok; fi; }
same() { if cmp -s "$1" "$2"; then ok; else fail "$1 and $2 differ"; fi; }

V0=$SHARED/corpus/upgrade/V0_before/examples/imagenet/imagenet_train.prototxt
V1=$SHARED/corpus/upgrade/V1_before_2015/models/bvlc_reference_caffenet/deploy.prototxt

# help lists the flags with their defaults
expect_rc 0 "$BIN" upgrade-net --help
has "$TMP/out" "in_format"
has "$TMP/out" "out_format"
has "$TMP/out" 'default: "auto"'
expect_rc 0 "$BIN" help upgrade-solver
has "$TMP/out" "out_format"

# V0 text -> current text; a second run writes the same bytes
expect_rc 0 "$BIN" upgrade-net "$V0" "$TMP/v0.prototxt"
has "$TMP/v0.prototxt" 'type: "Convolution"'
has "$TMP/v0.prototxt" 'transform_param {'
hasnt "$TMP/v0.prototxt" 'layers {'
expect_rc 0 "$BIN" upgrade-net "$TMP/v0.prototxt" "$TMP/v0_again.prototxt"
has "$TMP/err" "already in the current format"
same "$TMP/v0.prototxt" "$TMP/v0_again.prototxt"

# V1 deploy with input fields -> an Input layer first
expect_rc 0 "$BIN" upgrade-net "$V1" "$TMP/v1.prototxt"
has "$TMP/v1.prototxt" 'type: "Input"'
hasnt "$TMP/v1.prototxt" 'input_dim'
if [ "$(grep -m1 'type:' "$TMP/v1.prototxt")" = '  type: "Input"' ]; then ok; else fail "the Input layer should come first"; fi

# binary out by extension, back to text by flag: the same net
expect_rc 0 "$BIN" upgrade-net "$V1" "$TMP/v1.caffemodel"
has "$TMP/err" "(binary)"
expect_rc 0 "$BIN" upgrade-net "$TMP/v1.caffemodel" "$TMP/v1_from_bin.txt" -out_format text
same "$TMP/v1.prototxt" "$TMP/v1_from_bin.txt"
# and binary by flag, whatever the names say
expect_rc 0 "$BIN" upgrade-net -out_format=binary "$V1" "$TMP/v1.bin"
same "$TMP/v1.caffemodel" "$TMP/v1.bin"
expect_rc 0 "$BIN" upgrade-net --in_format binary "$TMP/v1.bin" "$TMP/v1_from_bin2.prototxt"
same "$TMP/v1.prototxt" "$TMP/v1_from_bin2.prototxt"

# solver: solver_type enum -> type string, then nothing more to do
printf 'net: "net.prototxt"\nbase_lr: 0.01\nmomentum: 0.9\nsolver_type: NESTEROV\nmax_iter: 100\n' >"$TMP/solver.prototxt"
expect_rc 0 "$BIN" upgrade-solver "$TMP/solver.prototxt" "$TMP/solver_new.prototxt"
has "$TMP/solver_new.prototxt" 'type: "Nesterov"'
hasnt "$TMP/solver_new.prototxt" 'solver_type'
has "$TMP/solver_new.prototxt" 'base_lr: 0.01'
expect_rc 0 "$BIN" upgrade-solver "$TMP/solver_new.prototxt" "$TMP/solver_again.prototxt"
same "$TMP/solver_new.prototxt" "$TMP/solver_again.prototxt"

# errors
expect_rc 2 "$BIN" upgrade-net "$TMP/missing.prototxt" "$TMP/x.prototxt"
has "$TMP/err" "missing.prototxt"
printf 'layers { name: "a" type: NOT_A_TYPE }\n' >"$TMP/garbage.prototxt"
expect_rc 2 "$BIN" upgrade-net "$TMP/garbage.prototxt" "$TMP/x.prototxt"
has "$TMP/err" "garbage.prototxt"
if [ -e "$TMP/x.prototxt" ]; then fail "no output should be written for unreadable input"; else ok; fi
printf 'solver_type: ADAM\ntype: "Adam"\n' >"$TMP/both.prototxt"
expect_rc 1 "$BIN" upgrade-solver "$TMP/both.prototxt" "$TMP/x.prototxt"
has "$TMP/err" "both.prototxt"
printf 'input: "x"\nlayers { layer { name: "p" type: "padding" pad: 1 } bottom: "x" top: "y" }\nlayers { layer { name: "r" type: "relu" } bottom: "y" top: "z" }\n' >"$TMP/pad.prototxt"
expect_rc 1 "$BIN" upgrade-net "$TMP/pad.prototxt" "$TMP/x.prototxt"
has "$TMP/err" '"r"'
# a V0 field that does not apply: reported, the rest written, status 1 as Caffe's tool
printf 'input: "x"\nlayers { layer { name: "r" type: "relu" num_output: 3 } bottom: "x" top: "x" }\n' >"$TMP/lossy.prototxt"
expect_rc 1 "$BIN" upgrade-net "$TMP/lossy.prototxt" "$TMP/lossy_new.prototxt"
has "$TMP/err" "num_output"
has "$TMP/lossy_new.prototxt" 'type: "ReLU"'
expect_rc 1 "$BIN" upgrade-net -out_format json "$V1" "$TMP/x.prototxt"
has "$TMP/err" "json"
expect_rc 1 "$BIN" upgrade-net -no_such_flag 1 "$V1" "$TMP/x.prototxt"
expect_rc 1 "$BIN" upgrade-net "$V1"
expect_rc 2 "$BIN" upgrade-net "$SHARED/golden/solvers/snapshot_hdf5/snap_iter_1.caffemodel.h5" "$TMP/x.prototxt"
has "$TMP/err" "HDF5"
# nothing left behind by the atomic writer
if ls "$TMP" | grep -q '\.tmp\.'; then fail "temporary files left in $TMP"; else ok; fi

echo "$((checks - fails)) passed, $fails failed"
[ "$fails" -eq 0 ] && rm -rf "$TMP"
[ "$fails" -eq 0 ]
