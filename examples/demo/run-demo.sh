#!/usr/bin/env bash
# The Gearmesh demo: four enterprises on 127.0.0.1 negotiate real orders.
#
#   velo        OEM buyer              tcp 7100, admin 8100
#   framecraft  frame factory          tcp 7101, admin 8101
#   alloyframe  competing factory      tcp 7102, admin 8102
#   cellpack    battery supplier       tcp 7103, admin 8103
#
# Each node is its own gearmesh-node process with its own LMDB store. Velo
# submits orders through the admin API (the `gearmesh` CLI); each order runs
# a contract-net negotiation (CFP -> proposals backed by capacity holds ->
# award -> confirm) and ends as a contract recorded at buyer and seller.
#
# Usage: examples/demo/run-demo.sh [BUILD_DIR]   (make demo does this)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
node_bin="$build/nodes/gearmesh-node"
cli="$build/nodes/gearmesh"
work="$build/demo"
nodes=(velo framecraft alloyframe cellpack)
declare -A admin=([velo]=8100 [framecraft]=8101 [alloyframe]=8102 [cellpack]=8103)
pids=()

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }

stop_nodes() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap stop_nodes EXIT

for port in 7100 7101 7102 7103 8100 8101 8102 8103; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "demo: port $port on 127.0.0.1 is in use; stop whatever uses it and retry" >&2
    exit 1
  fi
done

rm -rf "$work"
mkdir -p "$work/logs"
# Every link is CurveZMQ: each enterprise gets its own keypair; the configs
# (copied next to the keys) name their own node.key and their partners' node.pub.
bold "Generating a CURVE keypair per enterprise (gearmesh keys generate)"
for n in "${nodes[@]}"; do
  cp "$here/$n.toml" "$work/$n.toml"
  printf '  %-11s public key %s\n' "$n" "$("$cli" keys generate --out "$work/keys/$n" 2>>"$work/logs/keys.log")"
done

bold "Starting 4 nodes (configs from examples/demo/, data, keys and logs in $work)"
for n in "${nodes[@]}"; do
  "$node_bin" --config "$work/$n.toml" --data-dir "$work/data/$n" >"$work/logs/$n.log" 2>&1 &
  pids+=($!)
  printf '  %-11s pid %-7s admin 127.0.0.1:%s\n' "$n" "$!" "${admin[$n]}"
done
for n in "${nodes[@]}"; do
  for _ in $(seq 100); do
    "$cli" --node "127.0.0.1:${admin[$n]}" health >/dev/null 2>&1 && continue 2
    sleep 0.1
  done
  echo "demo: $n did not come up; its log:" >&2
  cat "$work/logs/$n.log" >&2
  exit 1
done

velo=(--node 127.0.0.1:8100)
bold "Velo submits 12 orders"
colours=(black red blue green)
submit() {
  "$cli" "${velo[@]}" order submit "$@"
}
for i in $(seq 0 11); do
  if ((i % 4 == 3)); then
    submit --item BATTERY --qty $((10 + i)) --due "+$((6 + i))d"
  else
    submit --item FRAME --qty $((4 + 2 * i)) --due "+$((1 + i / 3))d" --attr "colour=${colours[i % 4]}" \
      --attr "size=$((48 + i % 3 * 4))"
  fi
done

bold "Negotiating..."
for _ in $(seq 300); do
  open=$("$cli" "${velo[@]}" --json order list |
    jq '[.orders[] | select(.state != "contracted" and .state != "failed" and .state != "cancelled")] | length')
  [ "$open" = 0 ] && break
  sleep 0.1
done

bold "Orders at Velo"
"$cli" "${velo[@]}" order list

bold "Contracts at Velo (winner, price, promised date)"
"$cli" "${velo[@]}" contracts

# Agreement: every contract at the buyer exists with identical terms at its seller.
buyer_json=$("$cli" "${velo[@]}" --json contracts)
agree=0
disagree=0
for seller in framecraft alloyframe cellpack; do
  seller_json=$("$cli" --node "127.0.0.1:${admin[$seller]}" --json contracts)
  a=$(jq -c --arg s "$seller" '[.contracts[] | select(.seller == $s) | del(.role)] | sort_by(.contract_id)' <<<"$buyer_json")
  b=$(jq -c '[.contracts[] | select(.role == "seller") | del(.role)] | sort_by(.contract_id)' <<<"$seller_json")
  n=$(jq length <<<"$a")
  if [ "$a" = "$b" ]; then agree=$((agree + n)); else disagree=$((disagree + n)); fi
done

bold "Summary"
jq -r '
  .orders as $o
  | ($o | length) as $total
  | ([$o[] | select(.state == "contracted")] | length) as $won
  | "orders:      \($total)",
    "contracted:  \($won)",
    "failed:      \([$o[] | select(.state == "failed")] | length)",
    "on time:     \([$o[] | select(.contract != null and .contract.promised_due_us <= .due_us)] | length) of \($won)",
    "value:       \(([$o[] | select(.contract != null) | .contract.price_cents] | add // 0) / 100) EUR",
    ( [$o[] | select(.contract != null) | .contract.seller] | group_by(.) | .[]
      | "won by \(.[0]):\(" " * (12 - (.[0] | length)))\(length) orders" )
' < <("$cli" "${velo[@]}" --json order list)
echo "agreement:   $agree contracts identical at buyer and seller, $disagree differ"

bold "Identifiers: Velo's directory resolves them to the owning node"
first_contract=$(jq -r '[.contracts[] | .contract_id][0] // "velo/order/1/c1"' <<<"$buyer_json")
resolved=0
for id in framecraft/machine/weld2 "$first_contract"; do
  "$cli" "${velo[@]}" resolve "$id" || resolved=1
done
"$cli" "${velo[@]}" resolve --capability welding || resolved=1

contracted=$("$cli" "${velo[@]}" --json order list | jq '[.orders[] | select(.state == "contracted")] | length')
bold "Stopping nodes"
stop_nodes
trap - EXIT

bold "Verifying the four stores offline (gearmesh verify)"
verified=0
"$cli" verify "$work/data/velo" "$work/data/framecraft" "$work/data/alloyframe" \
  "$work/data/cellpack" | tail -1 || verified=$?
if [ "$contracted" -lt 10 ] || [ "$disagree" -ne 0 ] || [ "$verified" -ne 0 ] || [ "$resolved" -ne 0 ]; then
  echo "demo: FAILED ($contracted contracted, $disagree disagreeing, verify exit $verified, resolve exit $resolved); logs in $work/logs" >&2
  exit 1
fi
echo "demo: ok"
