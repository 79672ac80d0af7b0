#!/bin/sh
# The data tools end to end: convert-mnist gives Caffe's exact records,
# compute-mean Caffe's exact mean file, db-info, convert-imageset raw and
# encoded (read back through the Data layer by test_data), bad input errors.
set -u
BIN=${CREMA_BIN:-build/bin/crema}
SHARED=${CREMA_SHARED:-../shared}
TMP=${CREMA_TMP:-build/tmp}/data_tools.$$
FM=/usr/share/datasets/fashion-mnist
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }
rm -rf "$TMP"; mkdir -p "$TMP"

# convert-mnist: records byte-identical to the Caffe-made LMDB
if [ -f $FM/t10k-images-idx3-ubyte.gz ]; then
  "$BIN" convert-mnist $FM/t10k-images-idx3-ubyte.gz $FM/t10k-labels-idx1-ubyte.gz "$TMP/mnist" >/dev/null \
    && ok "convert-mnist runs" || bad "convert-mnist runs"
  mdb_dump "$TMP/mnist" | sed '1,/HEADER=END/d' > "$TMP/ours.txt"
  mdb_dump "$SHARED/golden/data/lmdb_test_crop/lmdb" | sed '1,/HEADER=END/d' > "$TMP/gold.txt"
  n=$(wc -l < "$TMP/gold.txt")
  if [ "$n" -gt 20000 ] && cmp -s "$TMP/ours.txt" "$TMP/gold.txt"; then ok "convert-mnist keys+values identical to golden ($n dump lines)"
  else bad "convert-mnist records differ from golden"; fi
  # gunzipped input works too, and LevelDB
  gzip -dc $FM/t10k-images-idx3-ubyte.gz > "$TMP/img.idx"; gzip -dc $FM/t10k-labels-idx1-ubyte.gz > "$TMP/lab.idx"
  "$BIN" convert-mnist "$TMP/img.idx" "$TMP/lab.idx" "$TMP/mnist_ldb" -backend leveldb >/dev/null \
    && "$BIN" db-info "$TMP/mnist_ldb" | grep -q "10000 records" && ok "convert-mnist raw IDX to leveldb" \
    || bad "convert-mnist raw IDX to leveldb"
  # compute-mean equals golden byte for byte, from LMDB and from LevelDB
  "$BIN" compute-mean "$TMP/mnist" "$TMP/mean.binaryproto" >/dev/null \
    && cmp -s "$TMP/mean.binaryproto" "$SHARED/golden/data/compute_image_mean/mean.binaryproto" \
    && ok "compute-mean equals golden" || bad "compute-mean equals golden"
  "$BIN" compute-mean "$TMP/mnist_ldb" "$TMP/mean2.binaryproto" -backend leveldb >/dev/null \
    && cmp -s "$TMP/mean2.binaryproto" "$SHARED/golden/data/compute_image_mean/mean.binaryproto" \
    && ok "compute-mean (leveldb) equals golden" || bad "compute-mean (leveldb) equals golden"
  out=$("$BIN" db-info "$TMP/mnist")
  echo "$out" | grep -q "10000 records" && echo "$out" | grep -q "1 x 28 x 28" && echo "$out" | grep -q "label 9" \
    && ok "db-info" || bad "db-info: $out"
else
  bad "Fashion-MNIST not installed at $FM (Debian dataset-fashion-mnist)"
fi

# convert-imageset on the cat/dog JPEGs: raw, resized, encoded
CD="$SHARED/corpus/caffeonspark/images_catdog"
"$BIN" convert-imageset "$CD/" "$CD/labels.txt" "$TMP/cd_raw" -resize_height 32 -resize_width 32 >/dev/null \
  && "$BIN" db-info "$TMP/cd_raw" | grep -q "53 records" && "$BIN" db-info "$TMP/cd_raw" | grep -q "3 x 32 x 32" \
  && ok "convert-imageset raw resized" || bad "convert-imageset raw resized"
"$BIN" convert-imageset "$CD/" "$CD/labels.txt" "$TMP/cd_enc" -encoded >/dev/null \
  && "$BIN" db-info "$TMP/cd_enc" | grep -q "encoded image" && ok "convert-imageset encoded" \
  || bad "convert-imageset encoded"
"$BIN" convert-imageset "$CD/" "$CD/labels.txt" "$TMP/cd_png" -encode_type png -gray -resize_height 20 -resize_width 24 -backend leveldb >/dev/null \
  && "$BIN" db-info "$TMP/cd_png" | grep -q "1 x 20 x 24" && ok "convert-imageset png gray leveldb" \
  || bad "convert-imageset png gray leveldb"

# bad input: one line, exit 1
expect_fail() {
  name=$1; shift
  "$BIN" "$@" >"$TMP/out" 2>"$TMP/err"; rc=$?
  if [ $rc -eq 1 ] && [ "$(wc -l < "$TMP/err")" -eq 1 ]; then ok "$name: $(cat "$TMP/err")"
  else bad "$name (rc $rc): $(cat "$TMP/err")"; fi
}
expect_fail "missing db" db-info "$TMP/nope"
expect_fail "existing output" convert-mnist "$TMP/img.idx" "$TMP/lab.idx" "$TMP/mnist"
expect_fail "labels for images" convert-mnist "$TMP/lab.idx" "$TMP/lab.idx" "$TMP/x1"
head -c 1000 "$TMP/img.idx" > "$TMP/short.idx"
expect_fail "truncated idx" convert-mnist "$TMP/short.idx" "$TMP/lab.idx" "$TMP/x2"
expect_fail "bad backend" compute-mean "$TMP/mnist" "$TMP/m.bp" -backend foo
printf 'nolabel\n' > "$TMP/list.txt"
expect_fail "bad list" convert-imageset "$CD/" "$TMP/list.txt" "$TMP/x3"
printf 'missing.jpg 1\n' > "$TMP/list2.txt"
expect_fail "missing image" convert-imageset "$CD/" "$TMP/list2.txt" "$TMP/x4"
for t in convert-mnist compute-mean db-info convert-imageset; do
  "$BIN" $t --help | grep -q "default" && ok "$t --help" || bad "$t --help"
done

rm -rf "$TMP"
echo "$fails failed"
[ $fails -eq 0 ]
