#!/bin/sh
# Runs every libFuzzer target in BUILD_DIR for SECONDS each, seeded from the
# shared corpus; exits non-zero if any target finds a crash.
# Usage: sh scripts/fuzz.sh BUILD_DIR SECONDS
set -u
build=${1:?usage: fuzz.sh BUILD_DIR SECONDS}
seconds=${2:?usage: fuzz.sh BUILD_DIR SECONDS}
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${CREMA_SHARED:-$root/../shared}
work=$build/fuzz-work
max_seed_bytes=4000000

# Copies files matching the find expression into dir, smallest first,
# until about max_seed_bytes are there.
seed() {
    dir=$1
    shift
    mkdir -p "$dir"
    total=0
    find "$shared/corpus" "$shared/golden" -type f "$@" -size -1000k -printf '%s %p\n' 2>/dev/null |
        sort -n | while read -r size path; do
            total=$((total + size))
            [ "$total" -gt "$max_seed_bytes" ] && break
            cp "$path" "$dir/$(echo "$path" | cksum | cut -d' ' -f1)-$(basename "$path")"
        done
}

status=0
found=0
for bin in "$build"/bin/fuzz_* "$build"/fuzz_*; do
    [ -x "$bin" ] && [ -f "$bin" ] || continue
    found=1
    name=$(basename "$bin")
    corpus=$work/$name/corpus
    artifacts=$work/$name/artifacts/
    mkdir -p "$corpus" "$artifacts"
    if [ -z "$(ls -A "$corpus")" ]; then
        case $name in
        fuzz_text) seed "$corpus" -name '*.prototxt' ;;
        *) seed "$corpus" \( -name '*.caffemodel' -o -name '*.solverstate' -o -name '*.binaryproto' \) ;;
        esac
    fi
    echo "== $name: $seconds s, $(ls "$corpus" | wc -l) inputs in $corpus"
    if ! "$bin" "$corpus" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$artifacts" >"$work/$name/log" 2>&1; then
        echo "!! $name failed; see $work/$name/log and $artifacts" >&2
        tail -40 "$work/$name/log" >&2
        status=1
    else
        grep -E 'stat::number_of_executed_units|Done' "$work/$name/log" | tail -2
    fi
done
if [ "$found" = 0 ]; then
    echo "no fuzz_* binaries in $build (configure with -DCREMA_FUZZ=ON)" >&2
    exit 1
fi
exit $status
