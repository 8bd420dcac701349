// Prefix listing as a key range, shared by the SQL backends (sqlite, postgres): a prefix
// match becomes [prefix, prefix_end(prefix)), which walks the primary-key index in order
// instead of a LIKE that cannot use it for binary keys.
#pragma once

#include <optional>
#include <string>

namespace prism::store {

// The smallest byte string greater than every string that starts with `prefix`, or
// nullopt when there is none (prefix empty or all 0xff: the range is open-ended).
inline std::optional<std::string> prefix_end(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) prefix.pop_back();
  if (prefix.empty()) return std::nullopt;
  prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
  return prefix;
}

}  // namespace prism::store
