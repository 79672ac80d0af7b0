#!/bin/sh
# Allreduce bus bandwidth between two ranks in two network namespaces whose
# veth link is limited to 1 Gbit/s with tc tbf; without root (or namespaces)
# it falls back to loopback, unlimited, and says so.
#   sh bench/bench_allreduce.sh [build-dir] [max-MB]
set -u
BUILD=${1:-build}
MAX_MB=${2:-256}
BIN=$BUILD/bench/bench_allreduce
[ -x "$BIN" ] || { echo "build it first: make -C $BUILD bench_allreduce"; exit 1; }
export CREMA_SECRET="bench-$$"
PORT=$((20000 + $$ % 20000))

loopback() {
    echo "NOTE: $1; measuring over loopback (127.0.0.1, no rate limit): not a network figure"
    URL=tcp://127.0.0.1:$PORT
    "$BIN" --rank 1 --size 2 --rendezvous "$URL" --max-mb "$MAX_MB" &
    P1=$!
    "$BIN" --rank 0 --size 2 --rendezvous "$URL" --max-mb "$MAX_MB"
    wait $P1
    exit 0
}

[ "$(id -u)" = 0 ] || loopback "network namespaces need root"
command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1 || loopback "no ip/tc commands"
NS1=crema-bench-$$-a
NS2=crema-bench-$$-b
VA=cbv$$a
VB=cbv$$b
cleanup() {
    ip netns del "$NS1" 2>/dev/null
    ip netns del "$NS2" 2>/dev/null
    true
}
trap cleanup EXIT INT TERM
ip netns add "$NS1" 2>/dev/null || loopback "cannot create network namespaces"
ip netns add "$NS2" && ip link add "$VA" type veth peer name "$VB" &&
ip link set "$VA" netns "$NS1" && ip link set "$VB" netns "$NS2" &&
ip -n "$NS1" addr add 10.99.0.1/24 dev "$VA" && ip -n "$NS2" addr add 10.99.0.2/24 dev "$VB" &&
ip -n "$NS1" link set "$VA" up && ip -n "$NS2" link set "$VB" up &&
ip -n "$NS1" link set lo up && ip -n "$NS2" link set lo up || { cleanup; loopback "veth setup failed"; }
# 1 Gbit/s each way, as a gigabit Ethernet port
for x in "$NS1 $VA" "$NS2 $VB"; do
    set -- $x
    ip netns exec "$1" tc qdisc add dev "$2" root tbf rate 1gbit burst 256kb latency 50ms ||
        { cleanup; loopback "tc tbf failed"; }
done
echo "two namespaces, veth 10.99.0.1 <-> 10.99.0.2 limited to 1 Gbit/s (tc tbf)"
URL=tcp://10.99.0.1:$PORT
ip netns exec "$NS2" "$BIN" --rank 1 --size 2 --rendezvous "$URL" --iface "$VB" --max-mb "$MAX_MB" &
P1=$!
ip netns exec "$NS1" "$BIN" --rank 0 --size 2 --rendezvous "$URL" --iface "$VA" --link-gbit 1 --max-mb "$MAX_MB"
wait $P1
