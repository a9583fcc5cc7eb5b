// The factory's participant policy: machines, routings, rates and margin.
#include "gearmesh/actors/factory.hpp"

#include <algorithm>
#include <map>

#include <caf/actor.hpp>

namespace gearmesh::actors {

namespace {

class factory_policy final : public participant_policy {
 public:
  explicit factory_policy(factory_config cfg) : cfg_(std::move(cfg)) {
    for (const auto& m : cfg_.machines) rate_[m.id] = m.rate_cents_per_hour;
  }

  std::string_view role() const override { return "factory"; }
  std::string_view currency() const override { return cfg_.currency; }
  timestamp_us hold_ttl_us() const override { return cfg_.hold_ttl_ms * us_per_ms; }

  std::vector<resource_spec> resources() const override {
    std::vector<resource_spec> out;
    for (const auto& m : cfg_.machines)
      out.push_back(
          {m.id, cfg_.bucket_minutes * us_per_min, m.capacity_per_bucket, m.energy_wh_per_hour});
    return out;
  }

  result<work_plan> plan(const wire::cfp& c, timestamp_us now) const override {
    const auto* item = cfg_.item(c.item);
    if (!item) return status(errc::invalid_argument, "unknown item " + c.item);
    work_plan p;
    p.from_us = std::max(c.earliest_start_us, now);
    p.horizon_us = p.from_us + cfg_.horizon_days * us_per_day;
    std::map<std::string, std::uint64_t> bought;
    if (auto s = expand(*item, c.quantity, p, bought); !s) return s;
    for (const auto& [id, quantity] : bought)
      p.components.push_back({id, static_cast<std::uint32_t>(quantity)});
    for (const auto& op : p.operations) p.min_lead_us += op.units * us_per_min;
    return p;
  }

  timestamp_us component_window_us() const override { return cfg_.component_window_ms * us_per_ms; }

  bool machines() const override { return true; }

  timestamp_us reschedule_delay_max_us() const override {
    return cfg_.reschedule_delay_max_hours * us_per_hour;
  }

  health_rule health(std::string_view resource) const override {
    for (const auto& m : cfg_.machines)
      if (m.id == resource)
        return {static_cast<std::int32_t>(m.health_threshold), m.maintenance_hours * us_per_hour};
    return {};
  }

  std::int64_t price(const wire::cfp&, const std::vector<chosen_step>& steps,
                     std::int64_t components_cents) const override {
    // cost in cent-minutes per hour: minutes * cents/hour.
    __int128 cost = static_cast<__int128>(components_cents) * 60;
    for (const auto& s : steps) {
      auto it = rate_.find(s.resource);
      cost += static_cast<__int128>(s.where.units()) * (it == rate_.end() ? 0 : it->second);
    }
    const __int128 den = 60 * 100;
    const __int128 num = cost * (100 + cfg_.margin_pct);
    return static_cast<std::int64_t>((num + den - 1) / den);
  }

 private:
  /// Appends the operations of `quantity` units of `item` to `p`: first those
  /// of the components made here (depth first, in bill order), then the
  /// item's own; bought components add up in `bought`.
  status expand(const factory_item_config& item, std::uint64_t quantity, work_plan& p,
                std::map<std::string, std::uint64_t>& bought) const {
    for (const auto& comp : item.components) {
      const auto need = quantity * static_cast<std::uint64_t>(comp.quantity);
      if (need > component_quantity_max)
        return status(errc::invalid_argument, "needs " + std::to_string(need) + " " + comp.item +
                                                  ", more than one order may ask for");
      if (const auto* made = cfg_.item(comp.item)) {
        if (auto s = expand(*made, need, p, bought); !s) return s;
      } else if ((bought[comp.item] += need) > component_quantity_max) {
        return status(errc::invalid_argument, "needs too many " + comp.item);
      }
    }
    for (const auto& op : item.operations) {
      operation_plan o;
      for (const auto& m : cfg_.machines)
        if (std::find(m.capabilities.begin(), m.capabilities.end(), op.capability) !=
            m.capabilities.end())
          o.candidates.push_back(m.id);
      if (o.candidates.empty())
        return status(errc::invalid_argument, "no machine for " + op.capability);
      o.units = op.setup_minutes + op.minutes_per_unit * static_cast<std::int64_t>(quantity);
      p.operations.push_back(std::move(o));
    }
    return status::ok();
  }

  /// Most units of one component one order may need (the buyer's limit).
  static constexpr std::uint64_t component_quantity_max = 1'000'000;

  factory_config cfg_;
  std::map<std::string, std::int64_t, std::less<>> rate_;
};

}  // namespace

std::shared_ptr<const participant_policy> make_factory_policy(factory_config cfg) {
  return std::make_shared<factory_policy>(std::move(cfg));
}

result<caf::actor> spawn_factory(caf::actor_system& sys, node_context& ctx, factory_config cfg,
                                 const caf::actor& buyer) {
  return spawn_participant(sys, ctx, make_factory_policy(std::move(cfg)), buyer);
}

}  // namespace gearmesh::actors
