// Offline invariant checker over the stores of stopped nodes (`gearmesh verify`).
//
// Reads the committed state of several nodes' LMDB stores (the tables of
// records.hpp) and checks what DESIGN.md's invariants say about it:
//
//   over_commitment     per resource and bucket, held + booked units <= the
//                       capacity of its "resources" record (invariant 1)
//   contract_missing,   every contract at a buyer exists at the seller with
//   contract_mismatch   the same terms (contract_record::same_terms), and vice
//                       versa, when both stores are among the inputs (invariant 2)
//   order_not_terminal  no order is still negotiating, awarded or ready (invariant 3)
//   component_mismatch  across tiers, within one store: a contracted offer's
//                       component orders are all contracted, and a contracted
//                       component order backs a contracted offer (invariant 2)
//   expired_hold        no hold is past its deadline at `now` (invariant 5)
//   orphan_booking      every booking backs an active seller contract through
//                       its contracted offer; otherwise capacity has leaked
//                       (a crash between two commits; invariant 6)
//   missing_booking     every active seller contract has the bookings its
//                       offer names (invariant 6)
//   corrupt_record      every value decodes and agrees with its key and table
//
// Invariants 3 and 5 and the agreement check hold only once the network has
// quiesced (every message delivered, deadlines passed): run it on stores of
// stopped nodes, not on a snapshot taken mid-negotiation.
//
// Each store's node id comes from "meta"/"node_id" (written by install_roles);
// stores written before that key existed fall back to the ids their records
// name, then to the directory name. Holds and bookings of a resource without a
// "resources" record cannot be checked for over-commitment and are counted as
// unchecked, as are contracts whose counterpart's store is not an input.
//
// Pure reading: no CAF, no clock (the caller passes `now`), nothing is written.
// Memory grows with the number of over-committable buckets in use (one entry
// per resource and bucket); reading is one pass per table.
// Threading: the functions are reentrant; the environments passed in must not
// be closed while a check runs (their own reads are thread-safe).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gearmesh/clock.hpp"
#include "gearmesh/status.hpp"
#include "gearmesh/store/store.hpp"

namespace gearmesh::actors {

/// What a violation breaks. The names returned by to_string() are stable
/// (`gearmesh verify --json` prints them); values are only appended.
enum class violation_kind : std::uint8_t {
  /// "over_commitment": a bucket's held + booked units exceed the capacity.
  /// table "resources", key = resource id; the message names the bucket.
  over_commitment,
  /// "contract_missing": a contract recorded at one end is missing at the
  /// other. node = where it is recorded; table "contracts", key = contract id.
  contract_missing,
  /// "contract_mismatch": both ends record the contract, with different terms
  /// or the same role; reported once, at the buyer's store (at the first of
  /// the two if both claim one role). The message lists the differences.
  contract_mismatch,
  /// "expired_hold": a hold past its deadline. table "holds".
  expired_hold,
  /// "order_not_terminal": an order still negotiating or awarded. table "orders".
  order_not_terminal,
  /// "orphan_booking": a booking whose offer is missing, not contracted, does
  /// not name it, or whose contract is missing or not active. table "bookings".
  orphan_booking,
  /// "missing_booking": an active seller contract whose offer is missing or
  /// not contracted, or lacks a booking it names. table "contracts".
  missing_booking,
  /// "corrupt_record": a value fails to decode (errc::storage from its codec),
  /// or contradicts its key or table (e.g. a booking in "holds").
  corrupt_record,
  /// "component_mismatch": nested negotiation left the tiers disagreeing at
  /// one node: a contracted offer whose component order is not contracted
  /// (table "offers"), or a contracted component order that no contracted
  /// offer names (table "orders"; a leaked sub-contract).
  component_mismatch,
  /// "capacity_oversold": a published capacity offer whose granted bookings
  /// ("capacity_sold", booked) add up to more units than it offered, or to
  /// other than units - remaining. table "capacity_offers", key = offer id.
  capacity_oversold,
  /// "capacity_booking_mismatch": a capacity booking booked at its publisher
  /// ("capacity_sold") is missing or not booked at its booker
  /// ("capacity_bookings"), or the other way round, or their terms differ.
  /// node = where it is recorded booked; reported only when both stores are given.
  capacity_booking_mismatch,
};

/// Stable lower-case name, e.g. "over_commitment".
const char* to_string(violation_kind k) noexcept;

/// The invariant a kind belongs to, for people: "invariant 1 (no
/// over-commitment)", ..., "store integrity" for corrupt_record.
const char* invariant_of(violation_kind k) noexcept;

struct violation {
  violation_kind kind = violation_kind::corrupt_record;
  std::string node;   // node id of the store it was found in
  std::string table;  // table holding `key`
  std::string key;
  std::string message;  // what is wrong, with the numbers
  bool operator==(const violation&) const = default;
};

/// Where a store's node id came from.
enum class node_id_source : std::uint8_t {
  meta,       // "meta"/"node_id"
  records,    // the ids its contracts, orders or offers name
  directory,  // the data directory's name (nothing else was found)
};
/// "meta", "records" or "directory".
const char* to_string(node_id_source s) noexcept;

/// One store as read.
struct store_summary {
  std::string path;
  std::string node_id;
  node_id_source id_source = node_id_source::meta;
  std::uint64_t orders = 0;
  std::uint64_t contracts = 0;
  std::uint64_t offers = 0;
  std::uint64_t holds = 0;
  std::uint64_t bookings = 0;
  std::uint64_t resources = 0;
};

struct verify_report {
  timestamp_us now_us = 0;
  std::vector<store_summary> stores;  // in input order
  /// The first verify_options::violations_max violations, store by store in
  /// input order, table by table; the agreement checks come last.
  std::vector<violation> violations;
  std::uint64_t violations_total = 0;  // including those not listed
  /// Contracts whose counterpart's store is not among the inputs.
  std::uint64_t contracts_unchecked = 0;
  /// Holds and bookings of resources without a "resources" record.
  std::uint64_t reservations_unchecked = 0;
  bool clean() const noexcept { return violations_total == 0; }
};

struct verify_options {
  /// Holds with deadline_us < now_us are expired (as in capacity_calendar).
  timestamp_us now_us = 0;
  /// Most violations listed in the report; the rest are only counted.
  std::size_t violations_max = 10'000;
  /// verify_stores: 2 or more checks the second half of the stores on a
  /// thread of its own (the stores' reads must then be thread-safe: not
  /// writing behind). Same report either way.
  unsigned threads = 1;
};

/// Most stores one check takes.
inline constexpr std::size_t verify_stores_max = 256;

/// A store to check: an open environment and the path it was opened from
/// (shown in the report; its last component is the last-resort node id).
struct store_ref {
  std::string path;
  const store::environment* env = nullptr;  // not owned; non-null
};

/// Checks `stores` (1..verify_stores_max). Errors (no report):
/// errc::invalid_argument if there are none or too many, an env is null, or
/// two stores have the same node id (the same store twice, or a backup next to
/// its node's store); errc::storage if LMDB fails to read a table. A value
/// that fails to decode is a corrupt_record violation, not an error.
result<verify_report> verify_stores(const std::vector<store_ref>& stores,
                                    const verify_options& opts);

/// What verify_changes keeps of one store between its checks, so that a
/// check reads no more than the changed keys: the allocations of every hold
/// and booking, the holds that live held offers carry (until their
/// deadline), the resource definitions, and the load of every bucket. One per
/// store, used with that store only. The first check with a new index reads
/// the store's holds, bookings, resources and held offers once. A check
/// whose now_us is earlier than the previous one's rebuilds it.
class check_index {
 public:
  check_index();
  ~check_index();
  check_index(const check_index&) = delete;
  check_index& operator=(const check_index&) = delete;

  struct state;  // verify.cpp
  state& get() { return *state_; }

 private:
  std::unique_ptr<state> state_;
};

/// The writes to one store since it was last checked, for verify_changes.
struct store_changes {
  store_ref store;
  std::string node_id;  // reported as the violations' node
  /// Keys written (put or erased) since the last check, by table; tables
  /// the checker does not know are ignored.
  store::written_keys keys;
  /// Kept between this store's checks (not owned); null: a check builds
  /// one for itself, reading the store's holds, bookings, resources and
  /// held offers.
  check_index* index = nullptr;
};

/// The invariants that hold at every instant of a running network --
/// over_commitment and corrupt_record -- checked incrementally, for a
/// simulator that checks its live stores often: every changed key that
/// still has a value is decoded and checked against its key, and the
/// changed holds, bookings, definitions and held offers update the index
/// (check_index); then the buckets whose load grew are checked against
/// their capacity (every bucket of a resource whose definition changed, and
/// every bucket when the index was just built). If the previous check of
/// each store was clean and `keys` lists every write since, the report
/// holds the same over_commitment and corrupt_record violations as
/// verify_stores on the same stores (and no other kind). Any number of
/// stores; the summaries carry only path and node id. Errors:
/// errc::invalid_argument for a null env, errc::storage if LMDB fails to
/// read.
result<verify_report> verify_changes(const std::vector<store_changes>& stores,
                                     const verify_options& opts);

/// Opens the existing store in `dir` (never creates one: environment::open
/// would). The store is opened read-write as LMDB requires for its lock file,
/// but nothing is written unless it lacks its format stamp, which a node's
/// store never does. Errors: errc::not_found ("<dir>: no such directory",
/// "<dir>: not a directory", "<dir>: not a Gearmesh store (no data.mdb)");
/// errc::storage from environment::open (format version mismatch, LMDB
/// error, already open in this process).
result<std::unique_ptr<store::environment>> open_existing_store(const std::string& dir);

/// Opens each of `data_dirs` with open_existing_store and runs verify_stores.
/// Errors: those of open_existing_store, naming the directory;
/// errc::invalid_argument for a directory given twice and as for verify_stores.
result<verify_report> verify_data_dirs(const std::vector<std::string>& data_dirs,
                                       const verify_options& opts);

}  // namespace gearmesh::actors
