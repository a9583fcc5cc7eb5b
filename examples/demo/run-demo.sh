#!/usr/bin/env bash
# The Gearmesh demo: five enterprises on 127.0.0.1 negotiate real orders.
#
#   velo        OEM buyer              tcp 7100, admin 8100
#   framecraft  frame factory          tcp 7101, admin 8101
#   alloyframe  competing factory      tcp 7102, admin 8102
#   cellpack    battery supplier       tcp 7103, admin 8103
#   tubeco      tube-set supplier      tcp 7104, admin 8104 (tier 2)
#
# Each node is its own gearmesh-node process with its own LMDB store. Velo
# submits orders through the admin API (the `gearmesh` CLI); each order runs
# a contract-net negotiation (CFP -> proposals backed by capacity holds ->
# award -> confirm) and ends as a contract recorded at buyer and seller.
# Frame orders span three tiers: a frame factory buys the tube sets from
# Tubeco before it proposes, and Velo's award cascades down to Tubeco.
# Then Framecraft's welding robot breaks down: the frames booked on it move
# to its second welder, are delayed, or -- when they would be too late --
# are cancelled, and Velo sources them again (Alloyframe). Then Framecraft
# publishes spare coating capacity and Velo books some.
#
# Usage: examples/demo/run-demo.sh [BUILD_DIR]   (make demo does this)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
node_bin="$build/nodes/gearmesh-node"
cli="$build/nodes/gearmesh"
work="$build/demo"
nodes=(velo framecraft alloyframe cellpack tubeco)
declare -A admin=([velo]=8100 [framecraft]=8101 [alloyframe]=8102 [cellpack]=8103 [tubeco]=8104)
pids=()

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }

stop_nodes() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap stop_nodes EXIT

for port in 7100 7101 7102 7103 7104 8100 8101 8102 8103 8104; do
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

bold "Starting ${#nodes[@]} nodes (configs from examples/demo/, data, keys and logs in $work)"
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

bold "Tier 2: the frame factories' tube-set orders (nested negotiation)"
tier2=0
for factory in framecraft alloyframe; do
  fj=$("$cli" --node "127.0.0.1:${admin[$factory]}" --json order list)
  jq -r --arg f "$factory" '.orders[] | select(.state == "contracted")
    | "  \($f) \(.order_id): \(.quantity) \(.item) from \(.contract.seller) for Velo order \(.parent_order_id)"' <<<"$fj"
  # Each tube-set contract is recorded identically at Tubeco.
  a=$("$cli" --node "127.0.0.1:${admin[$factory]}" --json contracts |
    jq -c '[.contracts[] | select(.role == "buyer") | del(.role)] | sort_by(.contract_id)')
  b=$("$cli" --node 127.0.0.1:8104 --json contracts |
    jq -c --arg f "$factory" '[.contracts[] | select(.buyer == $f) | del(.role)] | sort_by(.contract_id)')
  n=$(jq length <<<"$a")
  if [ "$a" = "$b" ]; then agree=$((agree + n)); tier2=$((tier2 + n)); else disagree=$((disagree + n)); fi
done
echo "tier 2:      $tier2 tube-set contracts, identical at the frame factory and at Tubeco"

bold "Disruption: Framecraft's welding robot weld-robot1 breaks down for 2 days"
fc=(--node 127.0.0.1:8101)
broke=0
outage=$("$cli" "${fc[@]}" --json machine down weld-robot1 --for 2d --reason "servo fault") ||
  { broke=1; outage='{"effects":[]}'; }
jq -r '"  \(.outage_id): \(.machine) down until \(.until_us / 1000000 | floor | todate) (\(.reason))",
  (.effects[] | "    \(.contract_id): \(.outcome)")' <<<"$outage"
cancelled=$(jq '[.effects[] | select(.outcome == "cancelled")] | length' <<<"$outage")
# Velo gets back what Framecraft cannot deliver in time and sources it again.
for _ in $(seq 300); do
  settled=$("$cli" "${velo[@]}" --json order list | jq '[.orders[]
    | select((.reason | test("cancelled contract")) and (.state == "contracted" or .state == "failed"))] | length')
  open=$("$cli" "${velo[@]}" --json order list |
    jq '[.orders[] | select(.state != "contracted" and .state != "failed" and .state != "cancelled")] | length')
  [ "$open" = 0 ] && [ "$settled" -ge "$cancelled" ] && break
  sleep 0.1
done
sleep 1  # the last production events
"$cli" "${fc[@]}" machine list || broke=1
bold "Orders at Velo after the breakdown (re-sourced ones name the cancelled contract)"
"$cli" "${velo[@]}" order list
"$cli" "${velo[@]}" --json order list | jq -r '.orders[]
  | select(.reason | test("cancelled contract"))
  | "  \(.order_id): \(.state) with \(.contract.seller // "-") -- \(.reason)"'
resourced=$("$cli" "${velo[@]}" --json order list |
  jq '[.orders[] | select((.reason | test("cancelled contract")) and .state == "contracted")] | length')
echo "re-sourced:  $resourced orders contracted again after Framecraft cancelled them"

# Agreement after the breakdown: moved, delayed and cancelled contracts are
# recorded identically at Velo and at each seller.
buyer_json=$("$cli" "${velo[@]}" --json contracts)
for seller in framecraft alloyframe cellpack; do
  seller_json=$("$cli" --node "127.0.0.1:${admin[$seller]}" --json contracts)
  a=$(jq -c --arg s "$seller" '[.contracts[] | select(.seller == $s) | del(.role)] | sort_by(.contract_id)' <<<"$buyer_json")
  b=$(jq -c '[.contracts[] | select(.role == "seller") | del(.role)] | sort_by(.contract_id)' <<<"$seller_json")
  [ "$a" = "$b" ] || { echo "demo: contracts with $seller disagree after the breakdown" >&2; disagree=$((disagree + 1)); }
done

bold "KPIs: Velo as buyer, Framecraft as seller (gearmesh kpis)"
"$cli" "${velo[@]}" kpis
"$cli" --node 127.0.0.1:8101 kpis

bold "Capacity sharing: Framecraft offers spare coating time, Velo books some"
cap_ok=0
offer=$("$cli" --node 127.0.0.1:8101 capacity publish --capability coating --units 240 \
  --unit-price 150 --start +20d --end +21d --valid-until +1h) || cap_ok=1
echo "  framecraft published $offer"
for _ in $(seq 50); do
  "$cli" "${velo[@]}" --json capacity offers | jq -e --arg o "$offer" \
    '.received[] | select(.offer_id == $o)' >/dev/null 2>&1 && break
  sleep 0.1
done
"$cli" "${velo[@]}" capacity offers || cap_ok=1
"$cli" "${velo[@]}" capacity book "$offer" --units 60 || cap_ok=1
"$cli" --node 127.0.0.1:8101 capacity bookings || cap_ok=1

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

bold "Verifying the ${#nodes[@]} stores offline (gearmesh verify)"
verified=0
"$cli" verify "$work/data/velo" "$work/data/framecraft" "$work/data/alloyframe" \
  "$work/data/cellpack" "$work/data/tubeco" | tail -1 || verified=$?
if [ "$contracted" -lt 10 ] || [ "$disagree" -ne 0 ] || [ "$verified" -ne 0 ] ||
  [ "$resolved" -ne 0 ] || [ "$tier2" -lt 1 ] || [ "$cap_ok" -ne 0 ] || [ "$broke" -ne 0 ]; then
  echo "demo: FAILED ($contracted contracted, $disagree disagreeing, $tier2 tier-2 contracts, verify exit $verified, resolve exit $resolved, capacity exit $cap_ok, breakdown exit $broke); logs in $work/logs" >&2
  exit 1
fi
echo "demo: ok"
