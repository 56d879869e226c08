// Prometheus metrics for the exchange server: counters, gauges and histograms kept in a
// registry that renders the text exposition format 0.0.4 for GET /metrics.
//
// The hot path is lock-free: a metric is registered once (under the registry's mutex) and
// the reference kept by the caller; Add/Set/Observe are relaxed atomic operations, so a
// request thread never waits for a scrape or for another request thread. A scrape reads the
// atomics one by one and may see a histogram mid-update (a bucket counted, the sum not yet):
// Prometheus tolerates that, and _count is derived from the buckets so that it always equals
// the le="+Inf" bucket of the same scrape.
//
// Names and label sets come from our code, never from requests (a route label is the route
// template, not the path), so a registration that breaks the rules (a bad name, a malformed
// label set, one name with two types, more than kSeriesMax series) is a programmer error and
// trips OCX_ASSERT.
#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ocx::api {

// A monotonically increasing count. Thread-safe; lock-free.
class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down (open connections, queue depth). Thread-safe; lock-free.
class Gauge {
 public:
  void Set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void Add(int64_t d) { value_.fetch_add(d, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Observations counted in fixed buckets (value <= upper bound), plus their sum.
// Thread-safe; lock-free. Invariant (asserted at construction): the upper bounds are finite
// and strictly increasing; the +Inf bucket is implicit.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // NaN is counted in the +Inf bucket only and makes the sum NaN (as Prometheus's Go client
  // does): it shows up instead of vanishing.
  void Observe(double value);
  // The number of observations (the sum of all buckets).
  uint64_t count() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  const std::vector<double>& upper_bounds() const { return upper_bounds_; }
  // Cumulative counts, one per upper bound and a last one for +Inf (== count()).
  std::vector<uint64_t> CumulativeCounts() const;

 private:
  const std::vector<double> upper_bounds_;
  // Per-bucket (not cumulative) counts: upper_bounds_.size() + 1 entries, the last for +Inf.
  const std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<double> sum_{0.0};
};

// Owns every metric of one server and renders them. Thread-safe: registration takes mu_;
// updates of a registered metric take no lock. References handed out stay valid for the
// registry's life (metrics are never removed).
class MetricsRegistry {
 public:
  // Named bound on the number of series (name + label set) in one registry, so that a label
  // taken by mistake from outside input cannot grow memory and scrapes without limit.
  static constexpr size_t kSeriesMax = 10'000;

  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // `labels` is the label set without braces, e.g. `method="GET",route="/v1/orders"` ("" for
  // none); FormatLabels() builds one with the values escaped. Registering the same name and
  // labels twice returns the same object. Metrics of one name share a type (and, for
  // histograms, the bucket bounds); the first registration's help text is kept.
  Counter& AddCounter(std::string_view name, std::string_view help, std::string_view labels = "");
  Gauge& AddGauge(std::string_view name, std::string_view help, std::string_view labels = "");
  Histogram& AddHistogram(std::string_view name, std::string_view help,
                          std::vector<double> upper_bounds, std::string_view labels = "");

  // Prometheus text exposition format 0.0.4: per family (sorted by name) one # HELP and one
  // # TYPE line, then its samples sorted by label set; histograms as _bucket{...,le="..."}
  // (cumulative, up to le="+Inf"), _sum and _count. Ends with a newline (empty when no
  // metric is registered).
  std::string RenderPrometheus() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Series {
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };
  struct Family {
    Type type;
    std::string help;
    std::vector<double> upper_bounds;                   // Histograms only.
    std::map<std::string, Series, std::less<>> series;  // By label set.
  };

  // The series for name+labels, created (with its family) when new. Requires mu_ held.
  Series& FindOrAddSeries(std::string_view name, std::string_view help, Type type,
                          const std::vector<double>* upper_bounds, std::string_view labels,
                          bool* created);

  mutable std::mutex mu_;
  std::map<std::string, Family, std::less<>> families_;  // Guarded by mu_.
  size_t series_count_ = 0;                              // Guarded by mu_.
};

// `key="value"` pairs joined by commas, each value escaped for the exposition format
// (backslash, double quote and newline). Keys must be valid label names (asserted).
std::string FormatLabels(
    std::initializer_list<std::pair<std::string_view, std::string_view>> labels);
std::string EscapeLabelValue(std::string_view value);
// Whether `name` matches [a-zA-Z_:][a-zA-Z0-9_:]*.
bool IsValidMetricName(std::string_view name);
// Whether `labels` is a well-formed label set without braces (possibly empty): comma-separated
// name="escaped value" pairs, label names [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", no
// name twice, no trailing comma.
bool IsValidLabelSet(std::string_view labels);
// A sample value as the exposition format writes it: shortest round-trip decimal, "+Inf",
// "-Inf", "NaN".
std::string FormatSampleValue(double value);

// Upper bounds for request latencies in seconds: 50 us to 10 s in 1-2-5 steps (each about
// twice the one before), 17 buckets.
std::vector<double> LatencyBucketsSeconds();

}  // namespace ocx::api
