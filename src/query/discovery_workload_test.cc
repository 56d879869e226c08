// The discovery benchmark's workload (bench/discovery_workload.h) at a small size: the fleet
// and queries are reproducible, every query parses, each kind is planned as intended, and
// the report is complete. Asserts no times (house style); the full-size run is
// DISABLED_FullSizeReport, run by hand:
//   ocx_query_test --gtest_also_run_disabled_tests --gtest_filter='*FullSizeReport'
#include "bench/discovery_workload.h"

#include <cstdio>
#include <variant>

#include "gtest/gtest.h"
#include "src/query/query.h"

namespace ocx::bench {
namespace {

TEST(DiscoveryWorkloadTest, FleetAndQueriesAreReproducible) {
  EXPECT_EQ(SyntheticMachine(1, 42), SyntheticMachine(1, 42));
  EXPECT_NE(SyntheticMachine(1, 42), SyntheticMachine(2, 42));
  EXPECT_EQ(SyntheticQueries("scan", 50, 3), SyntheticQueries("scan", 50, 3));
}

TEST(DiscoveryWorkloadTest, EveryQueryParses) {
  for (const char* kind : {"selective", "broad", "scan"}) {
    for (const std::string& text : SyntheticQueries(kind, 200, 1)) {
      auto parsed = query::Query::Parse(text);
      EXPECT_TRUE(std::holds_alternative<query::Query>(parsed)) << kind << ": " << text;
    }
  }
}

TEST(DiscoveryWorkloadTest, MachinesLookRealistic) {
  size_t with_gpu = 0;
  for (uint64_t i = 0; i < 1000; ++i) {
    const query::Attributes machine = SyntheticMachine(1, i);
    ASSERT_TRUE(machine.contains("region"));
    ASSERT_TRUE(machine.at("price").is_number);
    ASSERT_GT(machine.at("price").number_micros, 0);
    const int64_t cores = machine.at("cpu.cores").number_micros / 1'000'000;
    ASSERT_GE(cores, 2);
    ASSERT_LE(cores, 128);
    with_gpu += machine.at("gpu.count").number_micros > 0;
  }
  EXPECT_GT(with_gpu, 50u);
  EXPECT_LT(with_gpu, 300u);
}

TEST(DiscoveryWorkloadTest, SmallRunReportsEveryKind) {
  DiscoveryBenchOptions options;
  options.machines = 2000;
  options.queries = 300;
  const DiscoveryBenchReport report = RunDiscoveryBench(options);
  EXPECT_EQ(report.machines, 2000u);
  EXPECT_GT(report.memory_bytes, 0u);
  ASSERT_EQ(report.kinds.size(), 3u);
  for (const DiscoveryKindReport& kind : report.kinds) {
    EXPECT_EQ(kind.queries, 100u) << kind.kind;
    EXPECT_FALSE(kind.example.empty());
    EXPECT_LE(kind.p50_us, kind.p99_us);
  }
  EXPECT_EQ(report.kinds[0].kind, "selective");
  EXPECT_GT(report.kinds[0].indexed_percent, 90);
  EXPECT_LT(report.kinds[0].mean_examined, 2000.0 / 4);
  EXPECT_EQ(report.kinds[1].kind, "broad");
  EXPECT_GT(report.kinds[1].mean_matching, 2000.0 / 8);
  const std::string text = FormatDiscoveryReport(report);
  EXPECT_NE(text.find("selective"), std::string::npos);
  EXPECT_NE(text.find("2000 machines"), std::string::npos);
}

TEST(DiscoveryWorkloadTest, DISABLED_FullSizeReport) {
  const DiscoveryBenchReport report = RunDiscoveryBench(DiscoveryBenchOptions{});
  std::printf("%s", FormatDiscoveryReport(report).c_str());
}

}  // namespace
}  // namespace ocx::bench
