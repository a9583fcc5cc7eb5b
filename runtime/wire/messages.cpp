#include "gearmesh/wire/messages.hpp"

namespace gearmesh::wire {

const char* to_string(message_type t) noexcept {
  switch (t) {
    case message_type::cfp:
      return "cfp";
    case message_type::propose:
      return "propose";
    case message_type::refuse:
      return "refuse";
    case message_type::accept:
      return "accept";
    case message_type::reject:
      return "reject";
    case message_type::confirm:
      return "confirm";
    case message_type::failure:
      return "failure";
    case message_type::cancel:
      return "cancel";
    case message_type::ack:
      return "ack";
    case message_type::capacity_offer:
      return "capacity_offer";
    case message_type::book_capacity:
      return "book_capacity";
    case message_type::capacity_booked:
      return "capacity_booked";
    case message_type::capacity_refused:
      return "capacity_refused";
    case message_type::resolve:
      return "resolve";
    case message_type::resolution:
      return "resolution";
    case message_type::production_event:
      return "production_event";
    case message_type::capacity_cancelled:
      return "capacity_cancelled";
  }
  return "unknown";
}

const char* to_string(resolution_status s) noexcept {
  switch (s) {
    case resolution_status::not_found:
      return "not_found";
    case resolution_status::found:
      return "found";
    case resolution_status::referral:
      return "referral";
  }
  return "unknown";
}

const char* to_string(production_event_kind k) noexcept {
  switch (k) {
    case production_event_kind::progress:
      return "progress";
    case production_event_kind::started:
      return "started";
    case production_event_kind::completed:
      return "completed";
    case production_event_kind::delayed:
      return "delayed";
    case production_event_kind::delivered:
      return "delivered";
    case production_event_kind::cancelled:
      return "cancelled";
  }
  return "unknown";
}

const char* to_string(contract_progress p) noexcept {
  switch (p) {
    case contract_progress::contracted:
      return "contracted";
    case contract_progress::executing:
      return "executing";
    case contract_progress::completed:
      return "completed";
    case contract_progress::delivered:
      return "delivered";
    case contract_progress::cancelled:
      return "cancelled";
  }
  return "unknown";
}

}  // namespace gearmesh::wire
