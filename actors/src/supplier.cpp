// The supplier's participant policy: stock items with lead time and daily capacity.
#include "gearmesh/actors/supplier.hpp"

#include <algorithm>

#include <caf/actor.hpp>

namespace gearmesh::actors {

namespace {

class supplier_policy final : public participant_policy {
 public:
  explicit supplier_policy(supplier_config cfg) : cfg_(std::move(cfg)) {}

  std::string_view role() const override { return "supplier"; }
  std::string_view currency() const override { return cfg_.currency; }
  timestamp_us hold_ttl_us() const override { return cfg_.hold_ttl_ms * us_per_ms; }

  std::vector<resource_spec> resources() const override {
    std::vector<resource_spec> out;
    for (const auto& i : cfg_.items) out.push_back({i.id, us_per_day, i.daily_capacity});
    return out;
  }

  result<work_plan> plan(const wire::cfp& c, timestamp_us now) const override {
    const auto* item = cfg_.item(c.item);
    if (!item) return status(errc::invalid_argument, "unknown item " + c.item);
    work_plan p;
    p.from_us = std::max(c.earliest_start_us, now + item->lead_time_days * us_per_day);
    p.horizon_us = p.from_us + cfg_.horizon_days * us_per_day;
    p.operations.push_back({{item->id}, static_cast<std::int64_t>(c.quantity)});
    return p;
  }

  std::int64_t price(const wire::cfp& c, const std::vector<chosen_step>&,
                     std::int64_t) const override {
    const auto* item = cfg_.item(c.item);
    return item ? item->unit_price_cents * static_cast<std::int64_t>(c.quantity) : 0;
  }

 private:
  supplier_config cfg_;
};

}  // namespace

std::shared_ptr<const participant_policy> make_supplier_policy(supplier_config cfg) {
  return std::make_shared<supplier_policy>(std::move(cfg));
}

result<caf::actor> spawn_supplier(caf::actor_system& sys, node_context& ctx, supplier_config cfg) {
  return spawn_participant(sys, ctx, make_supplier_policy(std::move(cfg)), caf::actor{});
}

}  // namespace gearmesh::actors
