#!/bin/sh
# Weak scaling of data-parallel training: CIFAR10-quick (DummyData, batch
# 100 per rank, ../shared/bench/cifar10_quick.prototxt) on 1 rank, then on 2
# ranks over loopback, then on 2 ranks in two network namespaces whose veth
# link is limited to 1 Gbit/s (tc tbf; needs root, else left out).
#   efficiency = (2-rank images/s) / (2 x 1-rank images/s)
#   sh bench/bench_scaling.sh [build-dir] [iterations]
set -u
BUILD=${1:-build}
ITERS=${2:-40}
BIN=$BUILD/bin/crema
SHARED=${CREMA_SHARED:-../shared}
NET=$SHARED/bench/cifar10_quick.prototxt
[ -x "$BIN" ] || { echo "build crema first (make)"; exit 1; }
[ -f "$NET" ] || { echo "no $NET"; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
NET=$(cd "$(dirname "$NET")" && pwd)/$(basename "$NET")
TMP=$(mktemp -d /tmp/crema-scaling.XXXXXX)
export OPENBLAS_NUM_THREADS=1 # one core per rank
BATCH=100
NCPU=$(nproc)
echo "CIFAR10-quick training, DummyData batch $BATCH per rank, $ITERS iterations, OPENBLAS_NUM_THREADS=1 per rank"
echo "NOTE: this machine has $NCPU cores; 2 ranks on one machine share them (and compete with anything else"
echo "      running), so the efficiency below is a lower bound for ranks on separate hosts."
cat >"$TMP/solver.prototxt" <<EOF
net: "$NET"
base_lr: 0.001
momentum: 0.9
lr_policy: "fixed"
display: 10
max_iter: $ITERS
snapshot_after_train: false
random_seed: 1
EOF

# images/s of rank 0's log: the iter/s of every display after the first 10
# iterations (warm-up), averaged, times the global batch.
rate() {
    grep -E "^Iteration [0-9]+ \(" "$1" | awk -v b="$2" '
        { it = $2 + 0; gsub(/\(/, "", $3); if (it > 10) { s += $3; n++ } }
        END { if (n) printf "%.1f", s / n * b; else print "0" }'
}
eff() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / (2 * b); else print "n/a" }'; }

"$BIN" train -solver "$TMP/solver.prototxt" 2>"$TMP/one.log" || { tail -3 "$TMP/one.log"; exit 1; }
one=$(rate "$TMP/one.log" $BATCH)
echo "1 rank:                      $one images/s"
"$BIN" train -solver "$TMP/solver.prototxt" -clusterSize 2 2>"$TMP/two.log" || { tail -3 "$TMP/two.log"; exit 1; }
two=$(rate "$TMP/two.log" $((2 * BATCH)))
echo "2 ranks, loopback:           $two images/s   efficiency $(eff "$two" "$one")"

netns() {
    [ "$(id -u)" = 0 ] || { echo "2 ranks, 1 Gbit/s veth:      left out (network namespaces need root)"; return; }
    command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1 ||
        { echo "2 ranks, 1 Gbit/s veth:      left out (no ip/tc commands)"; return; }
    NS1=crema-scale-$$-a NS2=crema-scale-$$-b VA=csv$$a VB=csv$$b
    trap 'ip netns del $NS1 2>/dev/null; ip netns del $NS2 2>/dev/null; rm -rf "$TMP"' EXIT INT TERM
    ip netns add "$NS1" 2>/dev/null && ip netns add "$NS2" && ip link add "$VA" type veth peer name "$VB" &&
    ip link set "$VA" netns "$NS1" && ip link set "$VB" netns "$NS2" &&
    ip -n "$NS1" addr add 10.97.0.1/24 dev "$VA" && ip -n "$NS2" addr add 10.97.0.2/24 dev "$VB" &&
    ip -n "$NS1" link set "$VA" up && ip -n "$NS2" link set "$VB" up &&
    ip -n "$NS1" link set lo up && ip -n "$NS2" link set lo up &&
    ip netns exec "$NS1" tc qdisc add dev "$VA" root tbf rate 1gbit burst 256kb latency 50ms &&
    ip netns exec "$NS2" tc qdisc add dev "$VB" root tbf rate 1gbit burst 256kb latency 50ms ||
        { echo "2 ranks, 1 Gbit/s veth:      left out (namespace or tc setup failed)"; return; }
    P=$((20000 + $$ % 20000))
    ip netns exec "$NS2" "$BIN" train -solver "$TMP/solver.prototxt" -rank 1 -clusterSize 2 \
        -rendezvous tcp://10.97.0.1:$P -secret "scale-$$" -iface "$VB" 2>"$TMP/ns1.log" &
    p1=$!
    ip netns exec "$NS1" "$BIN" train -solver "$TMP/solver.prototxt" -rank 0 -clusterSize 2 \
        -rendezvous tcp://10.97.0.1:$P -secret "scale-$$" -iface "$VA" 2>"$TMP/ns0.log" ||
        { tail -3 "$TMP/ns0.log"; wait $p1; return; }
    wait $p1
    ns=$(rate "$TMP/ns0.log" $((2 * BATCH)))
    echo "2 ranks, 1 Gbit/s veth (tc): $ns images/s   efficiency $(eff "$ns" "$one")"
}
netns
rm -rf "$TMP"
