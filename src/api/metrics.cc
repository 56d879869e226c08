#include "src/api/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include "src/base/assert.h"

namespace ocx::api {
namespace {

bool IsNameStart(char c, bool allow_colon) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':');
}
bool IsNameChar(char c, bool allow_colon) {
  return IsNameStart(c, allow_colon) || (c >= '0' && c <= '9');
}

bool IsValidLabelName(std::string_view name) {
  if (name.empty() || !IsNameStart(name[0], false) || name.starts_with("__")) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return IsNameChar(c, false); });
}

// Splits a label set into its label names; false when `labels` is malformed.
bool ParseLabelNames(std::string_view labels, std::vector<std::string_view>* names) {
  size_t i = 0;
  while (i < labels.size()) {
    const size_t equals = labels.find('=', i);
    if (equals == std::string_view::npos) return false;
    const std::string_view name = labels.substr(i, equals - i);
    if (!IsValidLabelName(name)) return false;
    names->push_back(name);
    i = equals + 1;
    if (i >= labels.size() || labels[i] != '"') return false;
    ++i;
    // The value: up to the closing quote, with \\, \" and \n the only escapes.
    for (;;) {
      if (i >= labels.size()) return false;
      const char c = labels[i];
      if (c == '"') break;
      if (c == '\n') return false;
      if (c == '\\') {
        if (i + 1 >= labels.size()) return false;
        const char escaped = labels[i + 1];
        if (escaped != '\\' && escaped != '"' && escaped != 'n') return false;
        ++i;
      }
      ++i;
    }
    ++i;  // The closing quote.
    if (i == labels.size()) break;
    if (labels[i] != ',' || i + 1 == labels.size()) return false;
    ++i;
  }
  return true;
}

// The label names of a well-formed label set without repeated names; false otherwise.
bool LabelNames(std::string_view labels, std::set<std::string_view>* distinct) {
  std::vector<std::string_view> names;
  if (!ParseLabelNames(labels, &names)) return false;
  distinct->insert(names.begin(), names.end());
  return distinct->size() == names.size();
}

// HELP text escapes backslash and newline only.
std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// `name{labels}` or `name` when there are none; `extra` (e.g. le="0.5") goes last.
void AppendSeriesName(std::string* out, std::string_view name, std::string_view suffix,
                      std::string_view labels, std::string_view extra) {
  out->append(name);
  out->append(suffix);
  if (labels.empty() && extra.empty()) return;
  out->push_back('{');
  out->append(labels);
  if (!labels.empty() && !extra.empty()) out->push_back(',');
  out->append(extra);
  out->push_back('}');
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(upper_bounds_.size() + 1)) {
  for (size_t i = 0; i < upper_bounds_.size(); ++i) {
    OCX_ASSERT_MSG(std::isfinite(upper_bounds_[i]), "histogram bounds must be finite");
    OCX_ASSERT_MSG(i == 0 || upper_bounds_[i - 1] < upper_bounds_[i],
                   "histogram bounds must be strictly increasing");
  }
}

void Histogram::Observe(double value) {
  // The first bound >= value: Prometheus buckets are "less than or equal". NaN compares
  // false with everything and so lands in the +Inf bucket.
  size_t index = upper_bounds_.size();
  if (!std::isnan(value)) {
    index =
        static_cast<size_t>(std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) -
                            upper_bounds_.begin());
  }
  buckets_[index].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

uint64_t Histogram::count() const {
  uint64_t total = 0;
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
  }
  return total;
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> cumulative(upper_bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    cumulative[i] = total;
  }
  return cumulative;
}

MetricsRegistry::Series& MetricsRegistry::FindOrAddSeries(std::string_view name,
                                                          std::string_view help, Type type,
                                                          const std::vector<double>* upper_bounds,
                                                          std::string_view labels, bool* created) {
  OCX_ASSERT_MSG(IsValidMetricName(name), "invalid metric name");
  std::set<std::string_view> distinct;
  OCX_ASSERT_MSG(LabelNames(labels, &distinct), "malformed label set");
  if (type == Type::kHistogram) {
    OCX_ASSERT_MSG(!distinct.contains("le"), "a histogram may not have a label named le");
  }

  auto family = families_.find(name);
  if (family == families_.end()) {
    Family fresh;
    fresh.type = type;
    fresh.help = std::string(help);
    if (upper_bounds != nullptr) fresh.upper_bounds = *upper_bounds;
    family = families_.emplace(std::string(name), std::move(fresh)).first;
  }
  OCX_ASSERT_MSG(family->second.type == type, "one metric name registered with two types");
  if (upper_bounds != nullptr) {
    OCX_ASSERT_MSG(family->second.upper_bounds == *upper_bounds,
                   "one histogram name registered with two sets of buckets");
  }
  auto series = family->second.series.find(labels);
  *created = series == family->second.series.end();
  if (*created) {
    OCX_ASSERT_MSG(series_count_ < kSeriesMax, "MetricsRegistry::kSeriesMax exceeded");
    ++series_count_;
    series = family->second.series.emplace(std::string(labels), Series{}).first;
  }
  return series->second;
}

Counter& MetricsRegistry::AddCounter(std::string_view name, std::string_view help,
                                     std::string_view labels) {
  std::lock_guard<std::mutex> lock(mu_);
  bool created = false;
  Series& series = FindOrAddSeries(name, help, Type::kCounter, nullptr, labels, &created);
  if (created) series.counter = std::make_unique<Counter>();
  return *series.counter;
}

Gauge& MetricsRegistry::AddGauge(std::string_view name, std::string_view help,
                                 std::string_view labels) {
  std::lock_guard<std::mutex> lock(mu_);
  bool created = false;
  Series& series = FindOrAddSeries(name, help, Type::kGauge, nullptr, labels, &created);
  if (created) series.gauge = std::make_unique<Gauge>();
  return *series.gauge;
}

Histogram& MetricsRegistry::AddHistogram(std::string_view name, std::string_view help,
                                         std::vector<double> upper_bounds,
                                         std::string_view labels) {
  std::lock_guard<std::mutex> lock(mu_);
  bool created = false;
  Series& series = FindOrAddSeries(name, help, Type::kHistogram, &upper_bounds, labels, &created);
  if (created) series.histogram = std::make_unique<Histogram>(std::move(upper_bounds));
  return *series.histogram;
}

std::string MetricsRegistry::RenderPrometheus() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [name, family] : families_) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += EscapeHelp(family.help);
    out += "\n# TYPE ";
    out += name;
    switch (family.type) {
      case Type::kCounter:
        out += " counter\n";
        break;
      case Type::kGauge:
        out += " gauge\n";
        break;
      case Type::kHistogram:
        out += " histogram\n";
        break;
    }
    for (const auto& [labels, series] : family.series) {
      switch (family.type) {
        case Type::kCounter:
          AppendSeriesName(&out, name, "", labels, "");
          out += ' ';
          out += std::to_string(series.counter->value());
          out += '\n';
          break;
        case Type::kGauge:
          AppendSeriesName(&out, name, "", labels, "");
          out += ' ';
          out += std::to_string(series.gauge->value());
          out += '\n';
          break;
        case Type::kHistogram: {
          const Histogram& histogram = *series.histogram;
          // _count is the +Inf bucket of this very read, so the two always agree.
          const std::vector<uint64_t> cumulative = histogram.CumulativeCounts();
          for (size_t i = 0; i < cumulative.size(); ++i) {
            const std::string bound = i < histogram.upper_bounds().size()
                                          ? FormatSampleValue(histogram.upper_bounds()[i])
                                          : "+Inf";
            AppendSeriesName(&out, name, "_bucket", labels, "le=\"" + bound + "\"");
            out += ' ';
            out += std::to_string(cumulative[i]);
            out += '\n';
          }
          AppendSeriesName(&out, name, "_sum", labels, "");
          out += ' ';
          out += FormatSampleValue(histogram.sum());
          out += '\n';
          AppendSeriesName(&out, name, "_count", labels, "");
          out += ' ';
          out += std::to_string(cumulative.back());
          out += '\n';
          break;
        }
      }
    }
  }
  return out;
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatLabels(
    std::initializer_list<std::pair<std::string_view, std::string_view>> labels) {
  std::string out;
  for (const auto& [key, value] : labels) {
    OCX_ASSERT_MSG(IsValidLabelName(key), "invalid label name");
    if (!out.empty()) out += ',';
    out += key;
    out += "=\"";
    out += EscapeLabelValue(value);
    out += '"';
  }
  return out;
}

bool IsValidMetricName(std::string_view name) {
  if (name.empty() || !IsNameStart(name[0], true)) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return IsNameChar(c, true); });
}

bool IsValidLabelSet(std::string_view labels) {
  std::set<std::string_view> distinct;
  return LabelNames(labels, &distinct);
}

std::string FormatSampleValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  const std::to_chars_result result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  OCX_ASSERT(result.ec == std::errc());
  return std::string(buffer, result.ptr);
}

std::vector<double> LatencyBucketsSeconds() {
  return {0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
          0.05,    0.1,    0.2,    0.5,    1,     2,     5,     10};
}

}  // namespace ocx::api
