# Sourced by the network-namespace tests: skip (exit 77, ctest's "skipped"),
# netns_require (root and iproute2, else skip) and netns_setup, which joins two
# fresh namespaces NS1 and NS2 by a veth pair VA/VB and removes them on exit.
# Not a test itself (the test glob is tests/test_*.sh).
skip() { echo "skipped: $*"; exit 77; }

netns_require() {
    [ "$(id -u)" = 0 ] || skip "network namespaces need root (uid $(id -u))"
    command -v ip >/dev/null 2>&1 || skip "no 'ip' command (iproute2)"
}

netns_cleanup() {
    ip netns del "$NS1" 2>/dev/null
    ip netns del "$NS2" 2>/dev/null
    ip link del "$VA" 2>/dev/null
    true
}

# netns_setup NAME VETH SUBNET: namespaces crema-NAME-PID-{a,b} and veth
# VETHPID{a,b}, addressed SUBNET.1 and SUBNET.2 (/24), both links up.
netns_setup() {
    NS1=crema-$1-$$-a
    NS2=crema-$1-$$-b
    VA=$2$$a
    VB=$2$$b
    trap netns_cleanup EXIT INT TERM
    err=$(ip netns add "$NS1" 2>&1) || skip "cannot create a network namespace: $err"
    ip netns add "$NS2" || { echo "FAIL: second namespace"; exit 1; }
    err=$(ip link add "$VA" type veth peer name "$VB" 2>&1) || skip "cannot create a veth pair: $err"
    ip link set "$VA" netns "$NS1" && ip link set "$VB" netns "$NS2" &&
    ip -n "$NS1" addr add "$3.1/24" dev "$VA" && ip -n "$NS2" addr add "$3.2/24" dev "$VB" &&
    ip -n "$NS1" link set "$VA" up && ip -n "$NS2" link set "$VB" up &&
    ip -n "$NS1" link set lo up && ip -n "$NS2" link set lo up ||
        { echo "FAIL: setting up the veth link"; exit 1; }
}
