// Counters, latency quantiles and the Prometheus text the host exposes.
#include <gtest/gtest.h>

#include "metrics/metrics.hpp"

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

}  // namespace
}  // namespace prism::metrics
