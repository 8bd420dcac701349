// Request builders the practice suites share (in-process and through prismd): players
// numbered 0..N with fixed UUIDs, matches between them, profile lookups.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "prism/practice/v1/practice.pb.h"

namespace prism::testing::practice_requests {

namespace pb = ::prism::practice::v1;

inline std::string uuid(int n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012d", n);
  return buf;
}

inline pb::UpsertPlayerRequest upsert(int n, const std::string& name) {
  pb::UpsertPlayerRequest in;
  in.set_uuid(uuid(n));
  in.set_name(name);
  return in;
}

inline pb::RecordMatchRequest match(const std::string& id, const std::string& queue, bool ranked,
                                    std::vector<int> winners, std::vector<int> losers) {
  pb::RecordMatchRequest m;
  m.set_match_id(id);
  m.set_queue(queue);
  m.set_ranked(ranked);
  m.set_duration_ms(60000);
  for (int w : winners) m.add_winners()->set_uuid(uuid(w));
  for (int l : losers) m.add_losers()->set_uuid(uuid(l));
  return m;
}

inline pb::GetProfileRequest by_uuid(int n) {
  pb::GetProfileRequest in;
  in.set_uuid(uuid(n));
  return in;
}

inline pb::GetProfileRequest by_name(const std::string& name) {
  pb::GetProfileRequest in;
  in.set_name(name);
  return in;
}

}  // namespace prism::testing::practice_requests
