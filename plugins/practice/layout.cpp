// Storage names of the practice service (layout.hpp).
#include "layout.hpp"

namespace prism::practice {
namespace {
constexpr std::string_view kOwnerPrefix = "practice:";
}

std::string_view stat_name(v1::Stat stat) {
  switch (stat) {
    case v1::STAT_ELO: return "elo";
    case v1::STAT_WINS: return "wins";
    case v1::STAT_KILLS: return "kills";
    case v1::STAT_BEST_STREAK: return "best_streak";
    default: return "";
  }
}

std::string board_name(v1::Stat stat, std::string_view queue) {
  std::string out = "practice.";
  out += stat_name(stat);
  if (queue.empty()) return out + ".global";
  return out + ".q." + std::string(queue);
}

std::string presence_owner(std::string_view uuid) { return std::string(kOwnerPrefix) + std::string(uuid); }

std::string presence_status(std::string_view server, std::string_view queue, std::string_view name) {
  std::string out(kPresencePrefix);
  out.append(server).append("/").append(queue).append("/").append(name);
  return out;
}

std::string presence_prefix(std::string_view server, std::string_view queue) {
  std::string out(kPresencePrefix);
  if (server.empty()) return out;
  out.append(server).append("/");
  if (!queue.empty()) out.append(queue).append("/");
  return out;
}

std::optional<v1::Presence> parse_presence(std::string_view owner, std::string_view status,
                                           int64_t expires_at_ms) {
  if (!owner.starts_with(kOwnerPrefix) || !status.starts_with(kPresencePrefix)) return std::nullopt;
  std::string_view rest = status.substr(kPresencePrefix.size());
  const size_t a = rest.find('/');
  if (a == std::string_view::npos) return std::nullopt;
  const size_t b = rest.find('/', a + 1);
  if (b == std::string_view::npos) return std::nullopt;
  v1::Presence p;
  p.set_uuid(std::string(owner.substr(kOwnerPrefix.size())));
  p.set_server(std::string(rest.substr(0, a)));
  p.set_queue(std::string(rest.substr(a + 1, b - a - 1)));
  p.set_name(std::string(rest.substr(b + 1)));
  p.set_expires_at_ms(expires_at_ms);
  return p;
}

}  // namespace prism::practice
