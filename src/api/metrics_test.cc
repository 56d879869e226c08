#include "src/api/metrics.h"

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace ocx::api {
namespace {

TEST(MetricsTest, RendersSmallRegistryExactly) {
  MetricsRegistry registry;
  // Registered out of order: families render sorted by name, series by label set.
  registry.AddGauge("ocx_connections", "Open connections.").Set(3);
  Counter& post = registry.AddCounter("ocx_http_requests_total", "HTTP requests.",
                                      R"(method="POST",route="/v1/orders")");
  Counter& get = registry.AddCounter("ocx_http_requests_total", "HTTP requests.",
                                     R"(method="GET",route="/v1/orders")");
  post.Add(2);
  get.Add();
  Histogram& latency = registry.AddHistogram("ocx_http_request_seconds", "Request latency.",
                                             {0.005, 0.1, 1}, R"(route="/v1/orders")");
  latency.Observe(0.003);
  latency.Observe(0.25);
  registry.AddHistogram("ocx_journal_sync_seconds", "Sync\\time\nper batch.", {0.5});

  EXPECT_EQ(registry.RenderPrometheus(),
            "# HELP ocx_connections Open connections.\n"
            "# TYPE ocx_connections gauge\n"
            "ocx_connections 3\n"
            "# HELP ocx_http_request_seconds Request latency.\n"
            "# TYPE ocx_http_request_seconds histogram\n"
            "ocx_http_request_seconds_bucket{route=\"/v1/orders\",le=\"0.005\"} 1\n"
            "ocx_http_request_seconds_bucket{route=\"/v1/orders\",le=\"0.1\"} 1\n"
            "ocx_http_request_seconds_bucket{route=\"/v1/orders\",le=\"1\"} 2\n"
            "ocx_http_request_seconds_bucket{route=\"/v1/orders\",le=\"+Inf\"} 2\n"
            "ocx_http_request_seconds_sum{route=\"/v1/orders\"} 0.253\n"
            "ocx_http_request_seconds_count{route=\"/v1/orders\"} 2\n"
            "# HELP ocx_http_requests_total HTTP requests.\n"
            "# TYPE ocx_http_requests_total counter\n"
            "ocx_http_requests_total{method=\"GET\",route=\"/v1/orders\"} 1\n"
            "ocx_http_requests_total{method=\"POST\",route=\"/v1/orders\"} 2\n"
            "# HELP ocx_journal_sync_seconds Sync\\\\time\\nper batch.\n"
            "# TYPE ocx_journal_sync_seconds histogram\n"
            "ocx_journal_sync_seconds_bucket{le=\"0.5\"} 0\n"
            "ocx_journal_sync_seconds_bucket{le=\"+Inf\"} 0\n"
            "ocx_journal_sync_seconds_sum 0\n"
            "ocx_journal_sync_seconds_count 0\n");
}

TEST(MetricsTest, EmptyRegistryRendersNothing) {
  MetricsRegistry registry;
  EXPECT_EQ(registry.RenderPrometheus(), "");
}

TEST(MetricsTest, SameNameAndLabelsReturnSameObject) {
  MetricsRegistry registry;
  Counter& first = registry.AddCounter("ocx_x_total", "X.", R"(a="1")");
  Counter& again = registry.AddCounter("ocx_x_total", "Other help is ignored.", R"(a="1")");
  Counter& other = registry.AddCounter("ocx_x_total", "X.", R"(a="2")");
  EXPECT_EQ(&first, &again);
  EXPECT_NE(&first, &other);
  Histogram& h1 = registry.AddHistogram("ocx_h", "H.", {1, 2});
  Histogram& h2 = registry.AddHistogram("ocx_h", "H.", {1, 2});
  EXPECT_EQ(&h1, &h2);
  Gauge& g1 = registry.AddGauge("ocx_g", "G.");
  Gauge& g2 = registry.AddGauge("ocx_g", "G.");
  EXPECT_EQ(&g1, &g2);
}

TEST(MetricsTest, GaugeGoesUpAndDown) {
  Gauge gauge;
  gauge.Add(5);
  gauge.Add(-7);
  EXPECT_EQ(gauge.value(), -2);
  gauge.Set(40);
  EXPECT_EQ(gauge.value(), 40);
}

TEST(MetricsTest, HistogramBucketsAreCumulativeAndInclusive) {
  Histogram histogram({1, 2, 4});
  for (double value : {0.5, 1.0, 1.5, 2.0, 3.0, 100.0, -1.0}) histogram.Observe(value);
  // A value equal to a bound counts in that bound's bucket ("less than or equal").
  EXPECT_EQ(histogram.CumulativeCounts(), (std::vector<uint64_t>{3, 5, 6, 7}));
  EXPECT_EQ(histogram.count(), 7u);
  EXPECT_DOUBLE_EQ(histogram.sum(), 107.0);
}

TEST(MetricsTest, HistogramCountsNanInInfBucketOnly) {
  Histogram histogram({1});
  histogram.Observe(std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(histogram.CumulativeCounts(), (std::vector<uint64_t>{0, 1}));
  EXPECT_TRUE(std::isnan(histogram.sum()));
}

TEST(MetricsTest, LabelValuesAreEscaped) {
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  const std::string labels = FormatLabels({{"route", "/v1/\"x\""}, {"code", "200"}});
  EXPECT_EQ(labels, R"(route="/v1/\"x\"",code="200")");
  EXPECT_TRUE(IsValidLabelSet(labels));
  MetricsRegistry registry;
  registry.AddCounter("ocx_y_total", "Y.", labels).Add(1);
  EXPECT_NE(registry.RenderPrometheus().find(R"(ocx_y_total{route="/v1/\"x\"",code="200"} 1)"),
            std::string::npos);
}

TEST(MetricsTest, ValidatesNamesAndLabelSets) {
  EXPECT_TRUE(IsValidMetricName("ocx_http:requests_total"));
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_FALSE(IsValidMetricName("1abc"));
  EXPECT_FALSE(IsValidMetricName("a-b"));
  EXPECT_TRUE(IsValidLabelSet(""));
  EXPECT_TRUE(IsValidLabelSet(R"(a="",b="x\\y")"));
  EXPECT_FALSE(IsValidLabelSet(R"(a="1",)"));
  EXPECT_FALSE(IsValidLabelSet(R"(a="1",a="2")"));
  EXPECT_FALSE(IsValidLabelSet(R"(a=1)"));
  EXPECT_FALSE(IsValidLabelSet(R"(a="1)"));
  EXPECT_FALSE(IsValidLabelSet(R"(a="\t")"));
  EXPECT_FALSE(IsValidLabelSet(R"(__a="1")"));
  EXPECT_FALSE(IsValidLabelSet(R"(a:b="1")"));
  EXPECT_FALSE(IsValidLabelSet("{a=\"1\"}"));
}

TEST(MetricsTest, FormatsSampleValues) {
  EXPECT_EQ(FormatSampleValue(0.00005), "5e-05");
  EXPECT_EQ(FormatSampleValue(0.25), "0.25");
  EXPECT_EQ(FormatSampleValue(10), "10");
  EXPECT_EQ(FormatSampleValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatSampleValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatSampleValue(std::numeric_limits<double>::quiet_NaN()), "NaN");
}

TEST(MetricsTest, LatencyBucketsIncreaseFrom50MicrosecondsTo10Seconds) {
  const std::vector<double> bounds = LatencyBucketsSeconds();
  ASSERT_FALSE(bounds.empty());
  EXPECT_DOUBLE_EQ(bounds.front(), 50e-6);
  EXPECT_DOUBLE_EQ(bounds.back(), 10.0);
  for (size_t i = 1; i < bounds.size(); ++i) {
    EXPECT_GT(bounds[i] / bounds[i - 1], 1.9);
    EXPECT_LT(bounds[i] / bounds[i - 1], 2.6);
  }
  Histogram histogram(bounds);  // Asserts the bounds are strictly increasing.
}

TEST(MetricsTest, ConcurrentUpdatesAreAllCounted) {
  MetricsRegistry registry;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&registry] {
      // Registration races too: every thread must get the same objects.
      Counter& counter = registry.AddCounter("ocx_c_total", "C.");
      Gauge& gauge = registry.AddGauge("ocx_g", "G.");
      Histogram& histogram = registry.AddHistogram("ocx_h", "H.", {0.5});
      for (int i = 0; i < kPerThread; ++i) {
        counter.Add();
        gauge.Add(i % 2 == 0 ? 2 : -1);
        histogram.Observe(i % 2 == 0 ? 0.25 : 1.0);
      }
    });
  }
  // Scrapes while the updates run must not disturb them.
  for (int i = 0; i < 10; ++i) registry.RenderPrometheus();
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(registry.AddCounter("ocx_c_total", "C.").value(), uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(registry.AddGauge("ocx_g", "G.").value(), int64_t{kThreads} * kPerThread / 2);
  Histogram& histogram = registry.AddHistogram("ocx_h", "H.", {0.5});
  EXPECT_EQ(histogram.CumulativeCounts(),
            (std::vector<uint64_t>{kThreads * kPerThread / 2, kThreads * kPerThread}));
  EXPECT_DOUBLE_EQ(histogram.sum(), kThreads * kPerThread / 2 * 1.25);
}

TEST(MetricsDeathTest, OneNameWithTwoTypesIsAProgrammerError) {
  MetricsRegistry registry;
  registry.AddCounter("ocx_z", "Z.");
  EXPECT_DEATH(registry.AddGauge("ocx_z", "Z."), "two types");
}

TEST(MetricsDeathTest, MalformedLabelsAreAProgrammerError) {
  MetricsRegistry registry;
  EXPECT_DEATH(registry.AddCounter("ocx_z", "Z.", "route=/v1"), "malformed label set");
  EXPECT_DEATH(registry.AddHistogram("ocx_h", "H.", {1}, R"(le="1")"), "label named le");
  EXPECT_DEATH(registry.AddHistogram("ocx_h", "H.", {2, 1}), "strictly increasing");
}

}  // namespace
}  // namespace ocx::api
