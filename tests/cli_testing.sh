# Sourced by the command-line tests (set NAME first): absolute BIN, SHARED
# and a fresh scratch folder TMP, and the check counters with ok / fail /
# expect_rc / has. Not a test itself (the test glob is tests/test_*.sh).
BIN=$(realpath "${CREMA_BIN:-build/bin/crema}")
SHARED=$(realpath "${CREMA_SHARED:-../shared}")
TMP=${CREMA_TMP:-build/tmp}/$NAME.$$
rm -rf "$TMP"
mkdir -p "$TMP"
TMP=$(realpath "$TMP")
fails=0
checks=0
ok() { checks=$((checks + 1)); }
fail() {
    checks=$((checks + 1))
    fails=$((fails + 1))
    echo "FAIL: $*"
}
run() { "$@" >"$TMP/out" 2>"$TMP/err"; }
# expect_rc WANT CMD...: runs CMD (stdout to $TMP/out, stderr to $TMP/err), checks the exit status
expect_rc() {
    want=$1
    shift
    run "$@"
    got=$?
    if [ "$got" -eq "$want" ]; then ok; else fail "$* exited $got, expected $want: $(cat "$TMP/err")"; fi
}
# has FILE TEXT: FILE contains TEXT
has() { if grep -q -- "$2" "$1"; then ok; else fail "$1 should contain \"$2\" (has: $(head -3 "$1"))"; fi; }

# fashion_lmdb: Fashion-MNIST's test set as ./lmdb in $TMP (cd there), or
# skip the test (exit 77) where Debian's dataset-fashion-mnist is missing.
fashion_lmdb() {
    FM=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
    [ -f "$FM/t10k-images-idx3-ubyte.gz" ] || { echo "skipped: no Fashion-MNIST at $FM"; exit 77; }
    cd "$TMP" || exit 1
    "$BIN" convert-mnist "$FM/t10k-images-idx3-ubyte.gz" "$FM/t10k-labels-idx1-ubyte.gz" lmdb >/dev/null 2>&1 ||
        { echo "FAIL: convert-mnist"; exit 1; }
}
