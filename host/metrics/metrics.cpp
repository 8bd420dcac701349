// Counters, latency histograms and the Prometheus text exposition format.
#include "metrics/metrics.hpp"

#include <malloc.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>
#include <vector>

namespace prism::metrics {

void LatencyHistogram::record(std::chrono::nanoseconds latency) {
  const double us = static_cast<double>(latency.count()) / 1000.0;
  size_t bucket = 0;
  if (us >= 1.0) {
    // floor(4 log2 us) is floor(log2 us^4): the binary exponent of us^4, read from its
    // bits instead of a log2 call per request (it showed in perf of the request path).
    // us^4 stays finite up to ~1e77 us.
    const double fourth = (us * us) * (us * us);
    const auto exponent = static_cast<int64_t>((std::bit_cast<uint64_t>(fourth) >> 52) & 0x7FF) - 1023;
    bucket = static_cast<size_t>(exponent) + 1;
    if (bucket >= kBuckets) bucket = kBuckets - 1;
  }
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(static_cast<uint64_t>(us), std::memory_order_relaxed);
}

double LatencyHistogram::bucket_upper_us(size_t bucket) {
  return std::exp2(static_cast<double>(bucket) / 4.0);
}

uint64_t LatencyHistogram::count() const {
  uint64_t total = 0;
  for (const auto& b : buckets_) total += b.load(std::memory_order_relaxed);
  return total;
}

std::chrono::microseconds LatencyHistogram::quantile(double q) const {
  const uint64_t total = count();
  if (total == 0) return std::chrono::microseconds(0);
  const auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total)));
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += bucket_count(i);
    if (seen >= rank) {
      return std::chrono::microseconds(static_cast<int64_t>(std::ceil(bucket_upper_us(i))));
    }
  }
  return std::chrono::microseconds(static_cast<int64_t>(bucket_upper_us(kBuckets - 1)));
}

template <typename T>
T& Registry::find_or_add(std::deque<Entry<T>>& entries, std::string_view name,
                         std::string_view labels, std::string_view help) {
  for (auto& e : entries) {
    if (e.name == name && e.labels == labels) return e.metric;
  }
  auto& e = entries.emplace_back();
  e.name = name;
  e.labels = labels;
  e.help = help;
  return e.metric;
}

Counter& Registry::counter(std::string_view name, std::string_view labels,
                           std::string_view help) {
  std::lock_guard lock(mutex_);
  return find_or_add(counters_, name, labels, help);
}

LatencyHistogram& Registry::histogram(std::string_view name, std::string_view labels,
                                      std::string_view help) {
  std::lock_guard lock(mutex_);
  return find_or_add(histograms_, name, labels, help);
}

namespace {

std::string series(const std::string& name, const std::string& labels,
                   std::string_view extra = {}) {
  std::string out = name;
  if (labels.empty() && extra.empty()) return out;
  out += '{';
  out += labels;
  if (!labels.empty() && !extra.empty()) out += ',';
  out += extra;
  out += '}';
  return out;
}

}  // namespace

void Registry::gauge(std::string_view name, std::string_view help, std::function<double()> read) {
  std::lock_guard lock(mutex_);
  for (auto& e : gauges_) {
    if (e.name == name) {
      e.metric = std::move(read);
      return;
    }
  }
  gauges_.push_back({std::string(name), "", std::string(help), std::move(read)});
}

void Registry::remove_gauge(std::string_view name) {
  std::lock_guard lock(mutex_);
  std::erase_if(gauges_, [name](const auto& e) { return e.name == name; });
}

std::string Registry::render_prometheus() const {
  std::lock_guard lock(mutex_);
  std::string out;
  // The exposition format wants each family's samples together under one HELP and TYPE;
  // series of a family can be registered at any time (a plugin loaded later), so they are
  // gathered by name, in the order each name was first registered.
  auto names_of = [](const auto& entries) {
    std::vector<std::string> names;
    std::set<std::string> seen;
    for (const auto& e : entries) {
      if (seen.insert(e.name).second) names.push_back(e.name);
    }
    return names;
  };
  for (const std::string& name : names_of(counters_)) {
    bool described = false;
    for (const auto& e : counters_) {
      if (e.name != name) continue;
      if (!described) out += "# HELP " + e.name + " " + e.help + "\n# TYPE " + e.name + " counter\n";
      described = true;
      out += series(e.name, e.labels) + " " + std::to_string(e.metric.value()) + "\n";
    }
  }
  for (const std::string& name : names_of(histograms_)) {
    bool described = false;
    for (const auto& e : histograms_) {
      if (e.name != name) continue;
      if (!described) out += "# HELP " + e.name + " " + e.help + "\n# TYPE " + e.name + " histogram\n";
      described = true;
      // Exposed in seconds, the Prometheus base unit; every 4th bucket keeps the text short.
      uint64_t cumulative = 0;
      for (size_t i = 0; i < LatencyHistogram::kBuckets; ++i) {
        cumulative += e.metric.bucket_count(i);
        if (i % 4 != 0 || i > 100) continue;
        char le[48];
        std::snprintf(le, sizeof le, "le=\"%g\"", LatencyHistogram::bucket_upper_us(i) / 1e6);
        out += series(e.name + "_bucket", e.labels, le) + " " + std::to_string(cumulative) + "\n";
      }
      // Every bucket summed: the count, consistent with the buckets above.
      out += series(e.name + "_bucket", e.labels, "le=\"+Inf\"") + " " + std::to_string(cumulative) + "\n";
      char sum[48];
      std::snprintf(sum, sizeof sum, "%g", static_cast<double>(e.metric.sum_us()) / 1e6);
      out += series(e.name + "_sum", e.labels) + " " + sum + "\n";
      out += series(e.name + "_count", e.labels) + " " + std::to_string(cumulative) + "\n";
    }
  }
  for (const auto& e : gauges_) {
    char value[48];
    std::snprintf(value, sizeof value, "%.17g", e.metric());
    out += "# HELP " + e.name + " " + e.help + "\n# TYPE " + e.name + " gauge\n" + e.name + " " + value + "\n";
  }
  return out;
}

Registry& registry() {
  static Registry instance;
  return instance;
}

std::string render_process_gauges() {
  std::string out;
  auto gauge = [&out](const char* name, const char* help, uint64_t value) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n" + name + " " +
           std::to_string(value) + "\n";
  };
  uint64_t pages_total = 0, pages_resident = 0;
  if (std::ifstream statm("/proc/self/statm"); statm >> pages_total >> pages_resident) {
    gauge("prism_process_resident_bytes", "Resident set size of prismd (proc(5) statm).",
          pages_resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)));
  }
  // Every arena's (glibc sums them): chunks in use plus mmap()ed ones.
  const struct mallinfo2 heap = ::mallinfo2();
  gauge("prism_heap_inuse_bytes", "Bytes malloc has handed out and not had back (mallinfo2).",
        heap.uordblks + heap.hblkhd);
  return out;
}

std::string render_all() { return registry().render_prometheus() + render_process_gauges(); }

}  // namespace prism::metrics
