#include "bench/discovery_workload.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string_view>
#include <variant>

#include "absl/strings/str_cat.h"
#include "src/base/assert.h"
#include "src/base/decimal.h"
#include "src/base/rng.h"
#include "src/query/index.h"
#include "src/query/query.h"

namespace ocx::bench {
namespace {

using query::Value;

template <typename T, size_t N>
const T& Pick(base::Rng& rng, const std::array<T, N>& items) {
  return items[rng.Below(N)];
}

// An item by weight: weights[i] out of their sum.
template <size_t N>
size_t Weighted(base::Rng& rng, const std::array<uint32_t, N>& weights) {
  uint32_t total = 0;
  for (const uint32_t w : weights) total += w;
  uint64_t roll = rng.Below(total);
  for (size_t i = 0; i < N; ++i) {
    if (roll < weights[i]) return i;
    roll -= weights[i];
  }
  return N - 1;
}

constexpr std::array<std::string_view, 6> kRegions = {"eu", "us", "asia", "sa", "af", "oceania"};
constexpr std::array<uint32_t, 6> kRegionWeights = {35, 35, 18, 5, 4, 3};
constexpr std::array<int64_t, 8> kCores = {2, 4, 8, 16, 32, 64, 96, 128};
constexpr std::array<uint32_t, 8> kCoreWeights = {10, 25, 25, 18, 10, 7, 3, 2};
constexpr std::array<std::string_view, 6> kCpuModels = {"amd-epyc-7763",    "amd-ryzen-7950x",
                                                        "intel-xeon-8380",  "intel-i9-13900k",
                                                        "ampere-altra-q80", "intel-xeon-6338"};
struct GpuModel {
  std::string_view name;
  int64_t mem_gib;
};
constexpr std::array<GpuModel, 6> kGpus = {{{"rtx-3090", 24},
                                            {"rtx-4090", 24},
                                            {"l4", 24},
                                            {"a100-40g", 40},
                                            {"a100-80g", 80},
                                            {"h100-80g", 80}}};
constexpr std::array<int64_t, 4> kGpuCounts = {1, 2, 4, 8};
constexpr std::array<std::string_view, 3> kTiers = {"spot", "standard", "premium"};
constexpr int64_t kOwners = 20'000;

int64_t Units(int64_t whole) { return whole * base::kMicrosPerUnit; }

std::string Decimal(int64_t micros) { return base::FormatMicros(micros); }

double Percentile(std::vector<double> samples, size_t percent) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const size_t rank = std::min(samples.size() - 1, samples.size() * percent / 100);
  return samples[rank];
}

// CPU time of this thread: on a shared machine, wall time also counts the time other
// processes held the core.
double ThreadCpuMicros() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

double MicrosSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

query::Attributes SyntheticMachine(uint64_t seed, uint64_t index) {
  base::Rng rng(seed * 0x9e3779b97f4a7c15ULL + index);
  query::Attributes a;
  const std::string region(kRegions[Weighted(rng, kRegionWeights)]);
  const int64_t cores = kCores[Weighted(rng, kCoreWeights)];
  a["region"] = Value::Text(region);
  a["cpu.cores"] = Value::Number(Units(cores));
  a["cpu.factor"] = Value::Number(rng.Between(16, 32) * 50'000);  // 0.8 .. 1.6
  a["cpu.model"] = Value::Text(std::string(Pick(rng, kCpuModels)));
  a["mem.gib"] = Value::Number(Units(cores * (int64_t{1} << rng.Between(1, 3))));
  a["disk.gib"] = Value::Number(Units(int64_t{50} << rng.Between(0, 5)));
  a["os"] = Value::Text(rng.Percent(95) ? "linux" : "freebsd");
  a["arch"] = Value::Text(rng.Percent(88) ? "x86_64" : "aarch64");
  a["reputation"] = Value::Number(rng.Between(0, 1000) * 1000);  // 0 .. 1, three decimals.
  int64_t price = rng.Between(2'000, 60'000) * cores;            // Per slot-hour.
  if (rng.Percent(15)) {
    const GpuModel& gpu = Pick(rng, kGpus);
    const int64_t count = Pick(rng, kGpuCounts);
    a["gpu.count"] = Value::Number(Units(count));
    a["gpu.model"] = Value::Text(std::string(gpu.name));
    a["gpu.mem_gib"] = Value::Number(Units(gpu.mem_gib));
    price += count * gpu.mem_gib * rng.Between(5'000, 40'000);
  } else {
    a["gpu.count"] = Value::Number(0);
  }
  a["price"] = Value::Number(price);
  if (rng.Percent(60)) a["label.tier"] = Value::Text(std::string(Pick(rng, kTiers)));
  a["label.owner"] = Value::Text(absl::StrCat("owner-", rng.Below(kOwners)));
  if (rng.Percent(30)) {
    a["label.datacenter"] = Value::Text(absl::StrCat("dc-", region, "-", rng.Below(40)));
  }
  if (rng.Percent(20)) a["label.green"] = Value::Number(Units(1));
  return a;
}

std::vector<std::string> SyntheticQueries(const std::string& kind, size_t count, uint64_t seed) {
  // FNV-1a of the kind: std::hash is not the same across standard libraries.
  uint64_t kind_hash = 0xcbf29ce484222325ULL;
  for (const char c : kind)
    kind_hash = (kind_hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  base::Rng rng(seed ^ kind_hash);
  std::vector<std::string> queries;
  for (size_t i = 0; i < count; ++i) {
    const std::string region(kRegions[Weighted(rng, kRegionWeights)]);
    std::string q;
    if (kind == "selective") {
      switch (rng.Below(4)) {
        case 0:
          q = absl::StrCat("gpu.count >= ", Pick(rng, kGpuCounts), " && gpu.model == \"",
                           std::string(Pick(rng, kGpus).name), "\" && region == \"", region, "\"");
          break;
        case 1:
          q = absl::StrCat("cpu.cores >= 96 && mem.gib >= ", 256 << rng.Below(3),
                           " && region == \"", region, "\"");
          break;
        case 2:
          q = absl::StrCat("label.owner == \"owner-", rng.Below(kOwners), "\"");
          break;
        default:
          q = absl::StrCat("price < ", Decimal(rng.Between(10'000, 60'000)),
                           " && cpu.cores >= 2 && reputation >= 0.5");
          break;
      }
    } else if (kind == "broad") {
      switch (rng.Below(3)) {
        case 0:
          q = absl::StrCat("cpu.cores >= 4 && region in [\"eu\", \"us\"]");
          break;
        case 1:
          q = absl::StrCat("gpu.count == 0 && price <= ", rng.Between(1, 4));
          break;
        default:
          q = absl::StrCat("os == \"linux\" && reputation >= ",
                           Decimal(rng.Between(1, 5) * 100'000), " && mem.gib >= 8");
          break;
      }
    } else {
      OCX_ASSERT(kind == "scan");
      switch (rng.Below(4)) {
        case 0:
          q = absl::StrCat("cpu.model =~ \"^", std::string(Pick(rng, kCpuModels).substr(0, 5)),
                           "\" && mem.gib >= 16");
          break;
        case 1:
          q = absl::StrCat("label.datacenter =~ \"-", rng.Below(4), "[0-9]$\"");
          break;
        case 2:
          q = absl::StrCat("!(region == \"", region, "\") && label.tier != \"spot\"");
          break;
        default:
          q = absl::StrCat("label.owner =~ \"owner-1.*", rng.Below(10), "$\" || label.green == 1");
          break;
      }
    }
    queries.push_back(std::move(q));
  }
  return queries;
}

DiscoveryBenchReport RunDiscoveryBench(const DiscoveryBenchOptions& options) {
  using Clock = std::chrono::steady_clock;
  DiscoveryBenchReport report;
  report.machines = options.machines;
  report.seed = options.seed;

  std::vector<query::Attributes> fleet;
  fleet.reserve(options.machines);
  for (size_t i = 0; i < options.machines; ++i) fleet.push_back(SyntheticMachine(options.seed, i));
  query::MachineIndex index;
  const Clock::time_point build_start = Clock::now();
  for (size_t i = 0; i < fleet.size(); ++i) index.Upsert(i + 1, fleet[i]);
  report.build_ms = MicrosSince(build_start) / 1000;
  report.memory_bytes = index.MemoryBytesEstimate();

  // Re-pricing: what the exchange does when a machine's best ask changes.
  {
    base::Rng rng(options.seed + 7);
    std::vector<double> samples;
    const size_t updates = std::min<size_t>(options.machines, 10'000);
    for (size_t u = 0; u < updates; ++u) {
      const size_t i = rng.Below(fleet.size());
      fleet[i]["price"] = Value::Number(rng.Between(2'000, 2'000'000));
      const Clock::time_point start = Clock::now();
      index.Upsert(i + 1, fleet[i]);
      samples.push_back(MicrosSince(start));
    }
    report.reprice_p50_us = Percentile(std::move(samples), 50);
  }

  query::MachineIndex::SearchOptions search;
  search.sort = {query::SortKey{"price", false}};
  search.limit = 100;
  std::vector<double> parse_samples;
  const std::array<std::string, 3> kinds = {"selective", "broad", "scan"};
  for (const std::string& kind : kinds) {
    DiscoveryKindReport kind_report;
    kind_report.kind = kind;
    const std::vector<std::string> texts =
        SyntheticQueries(kind, std::max<size_t>(1, options.queries / kinds.size()), options.seed);
    kind_report.example = texts.front();
    kind_report.queries = texts.size();
    std::vector<double> samples;
    std::vector<double> cpu_samples;
    size_t matching = 0;
    size_t examined = 0;
    size_t indexed = 0;
    for (const std::string& text : texts) {
      const Clock::time_point parse_start = Clock::now();
      auto parsed = query::Query::Parse(text);
      parse_samples.push_back(MicrosSince(parse_start));
      OCX_ASSERT_MSG(std::holds_alternative<query::Query>(parsed), text.c_str());
      const query::Query& q = std::get<query::Query>(parsed);
      const double cpu_start = ThreadCpuMicros();
      const Clock::time_point start = Clock::now();
      const query::MachineIndex::SearchResult result = index.Search(q, search);
      samples.push_back(MicrosSince(start));
      cpu_samples.push_back(ThreadCpuMicros() - cpu_start);
      matching += result.total_matching;
      examined += result.examined;
      indexed += result.used_index ? 1 : 0;
    }
    const auto n = static_cast<double>(texts.size());
    kind_report.p50_us = Percentile(samples, 50);
    kind_report.p99_us = Percentile(samples, 99);
    kind_report.max_us = Percentile(samples, 100);
    kind_report.cpu_p50_us = Percentile(cpu_samples, 50);
    kind_report.cpu_p99_us = Percentile(std::move(cpu_samples), 99);
    kind_report.mean_matching = static_cast<double>(matching) / n;
    kind_report.mean_examined = static_cast<double>(examined) / n;
    kind_report.indexed_percent = 100.0 * static_cast<double>(indexed) / n;
    report.kinds.push_back(std::move(kind_report));
  }
  report.parse_p50_us = Percentile(std::move(parse_samples), 50);
  return report;
}

std::string FormatDiscoveryReport(const DiscoveryBenchReport& report) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line,
                "discovery: %zu machines (seed %llu), build %.1f ms, index ~%.1f MiB, "
                "re-price p50 %.2f us, parse p50 %.2f us\n",
                report.machines, static_cast<unsigned long long>(report.seed), report.build_ms,
                static_cast<double>(report.memory_bytes) / (1024.0 * 1024.0), report.reprice_p50_us,
                report.parse_p50_us);
  out += line;
  std::snprintf(line, sizeof line, "%-10s %7s %9s %9s %9s %9s %9s %9s %9s %8s\n", "kind", "queries",
                "p50 us", "p99 us", "max us", "cpu p50", "cpu p99", "matching", "examined",
                "indexed");
  out += line;
  for (const DiscoveryKindReport& kind : report.kinds) {
    std::snprintf(
        line, sizeof line, "%-10s %7zu %9.1f %9.1f %9.1f %9.1f %9.1f %9.0f %9.0f %7.0f%%\n",
        kind.kind.c_str(), kind.queries, kind.p50_us, kind.p99_us, kind.max_us, kind.cpu_p50_us,
        kind.cpu_p99_us, kind.mean_matching, kind.mean_examined, kind.indexed_percent);
    out += line;
  }
  out += "sorted by price, limit 100; examples:\n";
  for (const DiscoveryKindReport& kind : report.kinds) {
    absl::StrAppend(&out, "  ", kind.kind, ": ", kind.example, "\n");
  }
  return out;
}

}  // namespace ocx::bench
