#!/bin/sh
# What is at an output path survives crema writing there (crema features
# -output): a symbolic link is followed to its target, a FIFO is written
# through to its reader, a device node stays a device node, a directory is
# refused; temporaries that a killed run left next to the output are removed.
set -u
NAME=output_paths
. tests/cli_testing.sh
fashion_lmdb
cat >net.prototxt <<'NET'
name: "out"
layer { name: "data" type: "Data" top: "data" top: "label"
  transform_param { scale: 0.00390625 } data_param { source: "lmdb" batch_size: 4 backend: LMDB } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
NET
cat >solver.prototxt <<'SOLVER'
net: "train.prototxt"
base_lr: 0.01
lr_policy: "fixed"
max_iter: 1
snapshot_prefix: "snap"
random_seed: 1
SOLVER
cp net.prototxt train.prototxt
echo 'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }' >>train.prototxt
expect_rc 0 "$BIN" train -solver solver.prototxt
F="$BIN features -model net.prototxt -weights snap_iter_1.caffemodel -features ip -iterations 2"

# a symbolic link: the file it points to gets the records, the link stays
echo old >real.json
ln -s real.json link.json
expect_rc 0 $F -output link.json
if [ -L link.json ]; then ok; else fail "the symbolic link link.json was replaced by a file"; fi
if [ "$(wc -l <real.json)" -eq 8 ]; then ok; else fail "real.json should hold 8 records, has: $(head -2 real.json)"; fi
# ... also when it points to a file not made yet
ln -s made.json dangling.json
expect_rc 0 $F -output dangling.json
if [ -L dangling.json ] && [ "$(wc -l <made.json 2>/dev/null)" = 8 ]; then ok; else
    fail "dangling.json: the link should stay and made.json get 8 records"; fi

# a FIFO: written through to whoever reads it
mkfifo pipe.json
cat pipe.json >from_pipe.json &
reader=$!
expect_rc 0 $F -output pipe.json
# a run that did not write through leaves the reader waiting: give it 10 s
i=0
while kill -0 $reader 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill $reader 2>/dev/null
wait $reader
if [ -p pipe.json ]; then ok; else fail "the FIFO pipe.json was replaced"; fi
if [ "$(wc -l <from_pipe.json)" -eq 8 ]; then ok; else fail "the FIFO's reader got: $(head -2 from_pipe.json)"; fi

# a device node (our own null device; needs root, as the bug did)
if mknod null c 1 3 2>/dev/null; then
    expect_rc 0 $F -output null
    if [ -c null ]; then ok; else fail "the device node 'null' was replaced by a regular file"; fi
else
    echo "note: not root, the device-node case is not run"
fi

# a directory: refused, kept
mkdir adir
expect_rc 1 $F -output adir
has "$TMP/err" "directory"
if [ -d adir ]; then ok; else fail "the directory adir is gone"; fi

# a temporary left by a killed run goes; one of a running process stays
sh -c 'exit 0' &
dead=$!
wait $dead
echo partial >"out.json.tmp.$dead"
echo busy >"out.json.tmp.$$"
expect_rc 0 $F -output out.json
if [ ! -e "out.json.tmp.$dead" ]; then ok; else fail "out.json.tmp.$dead (a killed run's) was left behind"; fi
if [ -e "out.json.tmp.$$" ]; then ok; else fail "out.json.tmp.$$ (a live process's) was removed"; fi

# HDF5Output's file_name: a link is followed; a FIFO (HDF5 must seek) is
# refused by name and left a FIFO
h5net() {
    cat <<NET
name: "h5"
layer { name: "data" type: "Data" top: "data" top: "label"
  transform_param { scale: 0.00390625 } data_param { source: "lmdb" batch_size: 4 backend: LMDB } }
layer { name: "out" type: "HDF5Output" bottom: "data" bottom: "label" hdf5_output_param { file_name: "$1" } }
NET
}
ln -s real.h5 h5link
h5net h5link >h5link.prototxt
expect_rc 0 "$BIN" test -model h5link.prototxt -weights snap_iter_1.caffemodel -iterations 1 -allow_unmatched_weights
if [ -L h5link ] && [ -f real.h5 ]; then ok; else fail "HDF5Output replaced the link h5link (or wrote no real.h5)"; fi
mkfifo h5pipe
h5net h5pipe >h5pipe.prototxt
expect_rc 1 "$BIN" test -model h5pipe.prototxt -weights snap_iter_1.caffemodel -iterations 1 -allow_unmatched_weights
has "$TMP/err" "h5pipe is a FIFO"
if [ -p h5pipe ]; then ok; else fail "HDF5Output replaced the FIFO h5pipe"; fi

echo "$checks checks, $fails failed"
cd / && rm -rf "$TMP"
[ "$fails" -eq 0 ]
