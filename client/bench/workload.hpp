// What prism-bench's secure-mode requests carry: the same echo payload every time, or a
// bundled service's requests (docs/performance.md, "Storage"). One instance per load
// thread, so next() needs no locking.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "prism/expected.hpp"
#include "prism/client.hpp"

namespace prism::bench {

class Workload {
 public:
  virtual ~Workload() = default;
  virtual uint32_t packet_id() const = 0;
  // The next request's payload; valid until the next call.
  virtual std::string_view next() = 0;
};

struct WorkloadOptions {
  std::string name = "echo";  // echo | practice-record | practice-top10
  uint32_t packet_id = 101;   // echo: the packet id (101 = default.echo)
  size_t payload_size = 32;   // echo: bytes per request
  uint32_t players = 1000;    // practice: the pool of players matches are drawn from
  std::string run_id;         // practice: makes match ids unique across runs
};

// The echo request's payload: `size` bytes of a..z, the same in every request.
std::string echo_payload(size_t size);

// The names --workload accepts in this build.
std::vector<std::string> workload_names();

// Runs once before any load, on a session of its own: e.g. creates the players and
// enough matches for the boards to have entries. Errors name the request that failed.
Expected<void> prepare_workload(const WorkloadOptions& options, client::Client& session);

// The instance for load thread `thread`.
std::unique_ptr<Workload> make_workload(const WorkloadOptions& options, int thread);

}  // namespace prism::bench
