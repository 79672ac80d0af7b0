#!/bin/sh
# Two ranks in two network namespaces joined by a veth pair (10.99.0.1 and
# 10.99.0.2, inside the namespaces only) sum buffers over TCP. Exits 77
# (ctest: skipped) where namespaces cannot be made, e.g. not root.
set -u
# the test_dist binary of the build this test belongs to
BIN=${CREMA_TEST_DIST:-$(dirname "$(dirname "${CREMA_BIN:-build/bin/crema}")")/test_dist}
. "$(dirname "$0")/netns_testing.sh"

netns_require
[ -x "$BIN" ] || { echo "FAIL: $BIN not built"; exit 1; }

netns_setup dist cdv 10.99.0

export CREMA_SECRET="netns-test-$$"
PORT=$((20000 + $$ % 20000))
URL=tcp://10.99.0.1:$PORT
ip netns exec "$NS1" "$BIN" --rank 0 --size 2 --rendezvous "$URL" --iface "$VA" &
P0=$!
ip netns exec "$NS2" "$BIN" --rank 1 --size 2 --rendezvous "$URL" --iface "$VB"
R1=$?
wait $P0
R0=$?
if [ $R0 -ne 0 ] || [ $R1 -ne 0 ]; then
    echo "FAIL: rank 0 exited $R0, rank 1 exited $R1"
    exit 1
fi

# A wrong -iface in a namespace is refused with the interface named.
out=$(ip netns exec "$NS1" "$BIN" --rank 0 --size 2 --rendezvous "$URL" --iface eth-none 2>&1)
case "$out" in
*"-iface eth-none: no such interface"*) ;;
*) echo "FAIL: expected an -iface error, got: $out"; exit 1 ;;
esac
echo "ok: two namespaces, allreduce over veth 10.99.0.1 <-> 10.99.0.2"
