// Counters, latency quantiles and the Prometheus text the host exposes.
#include <gtest/gtest.h>

#include <cmath>

#include <vector>

#include "metrics/metrics.hpp"
#include "support/prometheus_text.hpp"

namespace prism::metrics {
namespace {

TEST(LatencyHistogram, QuantilesLandInTheRightBucket) {
  LatencyHistogram h;
  for (int i = 0; i < 990; ++i) h.record(std::chrono::microseconds(100));
  for (int i = 0; i < 10; ++i) h.record(std::chrono::milliseconds(50));
  EXPECT_EQ(h.count(), 1000u);
  // Buckets are ~19% wide: the reported bound is within one bucket above the value.
  EXPECT_GE(h.quantile(0.5).count(), 100);
  EXPECT_LE(h.quantile(0.5).count(), 120);
  EXPECT_GE(h.quantile(0.999).count(), 50000);
  EXPECT_LE(h.quantile(0.999).count(), 60000);
}

// Bucket b >= 1 holds [2^((b-1)/4), 2^(b/4)) microseconds; below 1 us is bucket 0.
TEST(LatencyHistogram, EachBucketSpansAQuarterPowerOfTwo) {
  for (size_t b = 1; b < 100; ++b) {
    LatencyHistogram h;
    const double low_us = std::exp2(static_cast<double>(b - 1) / 4.0);
    const double high_us = std::exp2(static_cast<double>(b) / 4.0);
    h.record(std::chrono::nanoseconds(static_cast<int64_t>(std::ceil(low_us * 1000.0 * 1.0001))));
    h.record(std::chrono::nanoseconds(static_cast<int64_t>(std::floor(high_us * 1000.0 * 0.9999))));
    EXPECT_EQ(h.bucket_count(b), 2u) << "bucket " << b;
  }
  LatencyHistogram h;
  h.record(std::chrono::nanoseconds(999));
  EXPECT_EQ(h.bucket_count(0), 1u);
}

TEST(LatencyHistogram, EmptyHistogramReportsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.quantile(0.99).count(), 0);
}

TEST(Registry, SameNameAndLabelsIsTheSameCounter) {
  Registry r;
  r.counter("x_total", "a=\"1\"", "help").add(2);
  r.counter("x_total", "a=\"1\"", "help").add(3);
  r.counter("x_total", "a=\"2\"", "help").add(1);
  EXPECT_EQ(r.counter("x_total", "a=\"1\"", "").value(), 5u);
  EXPECT_EQ(r.counter("x_total", "a=\"2\"", "").value(), 1u);
}

TEST(Registry, RendersPrometheusText) {
  Registry r;
  r.counter("prism_demo_total", "plugin=\"p\"", "Demo counter").add(7);
  r.histogram("prism_demo_seconds", "", "Demo latency").record(std::chrono::milliseconds(1));
  const std::string text = r.render_prometheus();
  EXPECT_NE(text.find("# TYPE prism_demo_total counter"), std::string::npos);
  EXPECT_NE(text.find("prism_demo_total{plugin=\"p\"} 7\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE prism_demo_seconds histogram"), std::string::npos);
  EXPECT_NE(text.find("prism_demo_seconds_bucket{le=\"+Inf\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("prism_demo_seconds_count 1\n"), std::string::npos);
}

// A family whose series were registered apart (a plugin loaded after start) is still
// exposed in one piece under one HELP and TYPE, as the format requires.
TEST(Registry, EachFamilyIsExposedTogetherWhateverTheRegistrationOrder) {
  Registry r;
  r.counter("prism_a_total", "plugin=\"one\"", "A").add(1);
  r.counter("prism_b_total", "", "B").add(2);
  r.counter("prism_a_total", "plugin=\"two\"", "A").add(3);
  r.histogram("prism_h_seconds", "plugin=\"one\"", "H").record(std::chrono::microseconds(10));
  r.counter("prism_c_total", "", "C");
  r.histogram("prism_h_seconds", "plugin=\"two\"", "H").record(std::chrono::seconds(2));
  const auto parsed = testing::parse_prometheus(r.render_prometheus());
  ASSERT_TRUE(parsed.error.empty()) << parsed.error << "\n" << r.render_prometheus();
  const auto* a = parsed.find("prism_a_total");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->type, "counter");
  EXPECT_EQ(a->samples.size(), 2u);
  EXPECT_EQ(parsed.value("prism_a_total", {{"plugin", "two"}}), 3.0);
  const auto* h = parsed.find("prism_h_seconds");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->type, "histogram");
  EXPECT_EQ(parsed.value("prism_h_seconds_count", {{"plugin", "two"}}), 1.0);
}

TEST(PrometheusParser, RefusesAFamilySplitInTwo) {
  const auto parsed = testing::parse_prometheus(
      "# TYPE x counter\nx{a=\"1\"} 1\n# TYPE y counter\ny 2\nx{a=\"2\"} 3\n");
  EXPECT_NE(parsed.error.find("not together"), std::string::npos) << parsed.error;
  EXPECT_NE(testing::parse_prometheus("x{a=1} 1\n").error, "");
  EXPECT_NE(testing::parse_prometheus("# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                                      "h_bucket{le=\"+Inf\"} 1\nh_count 1\n").error, "");
}

// A gauge is read when rendered, says what its function says then, and goes when removed.
TEST(Registry, AGaugeIsReadWhenRendered) {
  Registry r;
  double state = 0;
  r.gauge("prism_demo_up", "Demo state", [&state] { return state; });
  state = 1;
  auto parsed = testing::parse_prometheus(r.render_prometheus());
  ASSERT_TRUE(parsed.error.empty()) << parsed.error;
  EXPECT_EQ(parsed.find("prism_demo_up")->type, "gauge");
  EXPECT_EQ(parsed.value("prism_demo_up", {}), 1.0);
  r.remove_gauge("prism_demo_up");
  EXPECT_EQ(r.render_prometheus().find("prism_demo_up"), std::string::npos);
}

// The process gauges follow what the process holds: a live allocation raises heap in use
// by at least its size, and freeing it gives that back.
TEST(ProcessGauges, HeapInUseFollowsLiveAllocations) {
  const auto parsed = testing::parse_prometheus(render_all());
  ASSERT_TRUE(parsed.error.empty()) << parsed.error;
  EXPECT_GT(parsed.value("prism_process_resident_bytes", {}).value_or(0), 0.0);
  ASSERT_NE(parsed.find("prism_heap_inuse_bytes"), nullptr);
  EXPECT_EQ(parsed.find("prism_heap_inuse_bytes")->type, "gauge");
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's allocator is not malloc's: mallinfo2 does not see it";
#endif
  auto heap = [] {
    return testing::parse_prometheus(render_process_gauges()).value("prism_heap_inuse_bytes", {}).value_or(-1);
  };
  const double before = heap();
  auto* block = new std::vector<char>(8 << 20, 'x');
  asm volatile("" : : "g"(block->data()) : "memory");  // the allocation may not be elided
  const double during = heap();
  delete block;
  EXPECT_GE(during - before, 8 << 20);
  EXPECT_LT(heap(), during - (4 << 20));
}

}  // namespace
}  // namespace prism::metrics
