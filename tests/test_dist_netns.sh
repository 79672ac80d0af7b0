#!/bin/sh
# Two ranks in two network namespaces joined by a veth pair (10.99.0.1 and
# 10.99.0.2, inside the namespaces only) sum buffers over TCP. Exits 77
# (ctest: skipped) where namespaces cannot be made, e.g. not root.
set -u
# the test_dist binary of the build this test belongs to
BIN=${CREMA_TEST_DIST:-$(dirname "$(dirname "${CREMA_BIN:-build/bin/crema}")")/test_dist}
skip() { echo "skipped: $*"; exit 77; }

[ "$(id -u)" = 0 ] || skip "network namespaces need root (uid $(id -u))"
command -v ip >/dev/null 2>&1 || skip "no 'ip' command (iproute2)"
[ -x "$BIN" ] || { echo "FAIL: $BIN not built"; exit 1; }

NS1=crema-dist-$$-a
NS2=crema-dist-$$-b
VA=cdv$$a
VB=cdv$$b
cleanup() {
    ip netns del "$NS1" 2>/dev/null
    ip netns del "$NS2" 2>/dev/null
    ip link del "$VA" 2>/dev/null
    true
}
trap cleanup EXIT INT TERM

err=$(ip netns add "$NS1" 2>&1) || skip "cannot create a network namespace: $err"
ip netns add "$NS2" || { echo "FAIL: second namespace"; exit 1; }
err=$(ip link add "$VA" type veth peer name "$VB" 2>&1) || skip "cannot create a veth pair: $err"
ip link set "$VA" netns "$NS1" && ip link set "$VB" netns "$NS2" &&
ip -n "$NS1" addr add 10.99.0.1/24 dev "$VA" && ip -n "$NS2" addr add 10.99.0.2/24 dev "$VB" &&
ip -n "$NS1" link set "$VA" up && ip -n "$NS2" link set "$VB" up &&
ip -n "$NS1" link set lo up && ip -n "$NS2" link set lo up || { echo "FAIL: setting up the veth link"; exit 1; }

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
