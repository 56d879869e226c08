#include "src/agent/discovery.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace ocx::agent {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

// ---- cpuinfo --------------------------------------------------------------------------------

TEST(ParseCpuInfoTest, TakesFirstModelNameAndCountsProcessors) {
  const CpuInfo info = ParseCpuInfo(
      "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7763 64-Core Processor\n"
      "flags\t\t: fpu vme\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7763 64-Core Processor\n");
  EXPECT_EQ(info.model, "AMD EPYC 7763 64-Core Processor");
  EXPECT_EQ(info.processors, 2);
}

TEST(ParseCpuInfoTest, NoModelNameGivesEmptyModel) {
  // aarch64 /proc/cpuinfo has no "model name".
  const CpuInfo info = ParseCpuInfo("processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n");
  EXPECT_EQ(info.model, "");
  EXPECT_EQ(info.processors, 1);
}

TEST(ParseCpuInfoTest, GarbageGivesNothing) {
  const CpuInfo info = ParseCpuInfo("\x01\x02 not cpuinfo at all\n\n");
  EXPECT_EQ(info.model, "");
  EXPECT_EQ(info.processors, 0);
}

// ---- meminfo --------------------------------------------------------------------------------

TEST(ParseMemInfoTest, ReadsTotalAndAvailable) {
  const absl::StatusOr<MemInfo> mem = ParseMemInfo(
      "MemTotal:        8142216 kB\nMemFree:          512000 kB\n"
      "MemAvailable:    6000000 kB\nBuffers:           10000 kB\n");
  ASSERT_TRUE(mem.ok()) << mem.status();
  EXPECT_EQ(mem->total_bytes, int64_t{8142216} * 1024);
  EXPECT_EQ(mem->available_bytes, int64_t{6000000} * 1024);
}

TEST(ParseMemInfoTest, OldKernelWithoutMemAvailableSumsFreeBuffersCached) {
  const absl::StatusOr<MemInfo> mem = ParseMemInfo(
      "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 20 kB\nCached: 300 kB\nSwapCached: 7 kB\n");
  ASSERT_TRUE(mem.ok()) << mem.status();
  EXPECT_EQ(mem->available_bytes, 420 * 1024);
}

TEST(ParseMemInfoTest, MissingTotalIsAnError) {
  EXPECT_FALSE(ParseMemInfo("MemFree: 100 kB\n").ok());
  EXPECT_FALSE(ParseMemInfo("").ok());
}

TEST(ParseMemInfoTest, GarbageNumberIsAnError) {
  EXPECT_FALSE(ParseMemInfo("MemTotal: lots kB\n").ok());
  EXPECT_FALSE(ParseMemInfo("MemTotal: -5 kB\n").ok());
}

// ---- os-release -----------------------------------------------------------------------------

TEST(ParseOsReleaseTest, PrefersPrettyName) {
  EXPECT_EQ(ParseOsRelease("NAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID=\"12\"\n"
                           "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            "Debian GNU/Linux 12 (bookworm)");
}

TEST(ParseOsReleaseTest, FallsBackToIdAndVersion) {
  EXPECT_EQ(ParseOsRelease("# comment\nID=alpine\nVERSION_ID=3.19.1\n"), "alpine 3.19.1");
  EXPECT_EQ(ParseOsRelease("ID='arch'\n"), "arch");
  EXPECT_EQ(ParseOsRelease("garbage\n"), "");
}

// ---- nvidia-smi -----------------------------------------------------------------------------

TEST(ParseNvidiaSmiTest, NoGpusIsEmpty) {
  const NvidiaSmiParse parsed = ParseNvidiaSmi("");
  EXPECT_TRUE(parsed.gpus.empty());
  EXPECT_TRUE(parsed.warnings.empty());
}

TEST(ParseNvidiaSmiTest, OneGpu) {
  const NvidiaSmiParse parsed =
      ParseNvidiaSmi("NVIDIA H100 80GB HBM3, 81559, GPU-5e3f0b0c-1111-2222-3333-444455556666\n");
  ASSERT_EQ(parsed.gpus.size(), 1u);
  EXPECT_EQ(parsed.gpus[0].name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(parsed.gpus[0].model, "h100");
  EXPECT_EQ(parsed.gpus[0].mem_mib, 81559);
  EXPECT_EQ(parsed.gpus[0].uuid, "GPU-5e3f0b0c-1111-2222-3333-444455556666");
  EXPECT_TRUE(parsed.warnings.empty());
}

TEST(ParseNvidiaSmiTest, EightGpusWithOddSpacingAndCrLf) {
  std::string text;
  for (int i = 0; i < 8; ++i) {
    text += absl::StrCat("  NVIDIA H100 80GB HBM3 ,81559 ,   GPU-", i, "  \r\n");
  }
  text += "\n";
  const NvidiaSmiParse parsed = ParseNvidiaSmi(text);
  ASSERT_EQ(parsed.gpus.size(), 8u);
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(parsed.gpus[i].name, "NVIDIA H100 80GB HBM3");
    EXPECT_EQ(parsed.gpus[i].mem_mib, 81559);
    EXPECT_EQ(parsed.gpus[i].uuid, absl::StrCat("GPU-", i));
  }
  EXPECT_TRUE(parsed.warnings.empty());
}

TEST(ParseNvidiaSmiTest, NotAvailableFieldsKeepTheGpuWithAWarning) {
  const NvidiaSmiParse parsed = ParseNvidiaSmi("NVIDIA A100-SXM4-80GB, [N/A], [N/A]\n");
  ASSERT_EQ(parsed.gpus.size(), 1u);
  EXPECT_EQ(parsed.gpus[0].model, "a100");
  EXPECT_EQ(parsed.gpus[0].mem_mib, 0);
  EXPECT_EQ(parsed.gpus[0].uuid, "");
  EXPECT_EQ(parsed.warnings.size(), 1u);
}

TEST(ParseNvidiaSmiTest, GarbageLinesAreSkippedWithWarnings) {
  const NvidiaSmiParse parsed = ParseNvidiaSmi(
      "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"
      "NVIDIA H100, lots, GPU-1\n"
      "NVIDIA L4, 23034, GPU-2\n");
  ASSERT_EQ(parsed.gpus.size(), 1u);
  EXPECT_EQ(parsed.gpus[0].model, "l4");
  EXPECT_EQ(parsed.warnings.size(), 2u);
}

TEST(GpuModelFromNameTest, CommonNames) {
  EXPECT_EQ(GpuModelFromName("NVIDIA H100 80GB HBM3"), "h100");
  EXPECT_EQ(GpuModelFromName("NVIDIA H100 PCIe"), "h100");
  EXPECT_EQ(GpuModelFromName("NVIDIA H200"), "h200");
  EXPECT_EQ(GpuModelFromName("Tesla V100-SXM2-16GB"), "v100");
  EXPECT_EQ(GpuModelFromName("NVIDIA A100-SXM4-80GB"), "a100");
  EXPECT_EQ(GpuModelFromName("NVIDIA GeForce RTX 4090"), "rtx4090");
  EXPECT_EQ(GpuModelFromName("NVIDIA L40S"), "l40s");
  EXPECT_EQ(GpuModelFromName(""), "unknown");
}

// ---- Factor --------------------------------------------------------------------------------

TEST(FactorTest, RoundsDownToAMultipleOfFiveHundredths) {
  EXPECT_EQ(FactorMicros(1'049'999, 1'000'000), 1'000'000);
  EXPECT_EQ(FactorMicros(1'050'000, 1'000'000), 1'050'000);
  EXPECT_EQ(FactorMicros(1'000'000, 1'000'000), 1'000'000);
  EXPECT_EQ(FactorMicros(999'999, 1'000'000), 950'000);
  EXPECT_EQ(FactorMicros(1'150'000, 1'000'000), 1'150'000);  // 1.15 * 20 is 22.999... in double
  EXPECT_EQ(FactorMicros(1'350'000, 1'000'000), 1'350'000);
}

TEST(FactorTest, CappedAtTwo) {
  EXPECT_EQ(FactorMicros(3'000'000, 1'000'000), 2'000'000);
  EXPECT_EQ(FactorMicros(2'000'000, 1'000'000), 2'000'000);
  EXPECT_EQ(FactorMicros(1'999'999, 1'000'000), 1'950'000);
  EXPECT_EQ(FactorMicros(int64_t{1} << 62, 1), 2'000'000);
}

TEST(FactorTest, SlowOrUnmeasuredMachineHasFactorZero) {
  EXPECT_EQ(FactorMicros(49'999, 1'000'000), 0);
  EXPECT_EQ(FactorMicros(50'000, 1'000'000), 50'000);
  EXPECT_EQ(FactorMicros(0), 0);
}

TEST(BenchmarkTest, WorkloadIsDeterministic) {
  EXPECT_EQ(RunBenchmarkUnits(3), RunBenchmarkUnits(3));
  EXPECT_NE(RunBenchmarkUnits(3), RunBenchmarkUnits(4));
}

TEST(BenchmarkTest, ShortRunHasAPositiveScore) {
  const BenchmarkScore score = MeasureBenchmark(/*units=*/5, /*repeats=*/1);
  EXPECT_GT(score.score, 0);  // No assertion on time itself.
  EXPECT_EQ(score.checksum, RunBenchmarkUnits(5));
}

// ---- ToMachineSpec -------------------------------------------------------------------------

MachineFacts Facts(int32_t cores, int64_t factor_micros, int64_t mem_bytes, int64_t disk_bytes) {
  MachineFacts facts;
  facts.hostname = "box";
  facts.cpu_model = "Test CPU";
  facts.logical_cores = cores;
  facts.mem_total_bytes = mem_bytes;
  facts.mem_available_bytes = mem_bytes;
  facts.disk_free_bytes = disk_bytes;
  facts.os = "Debian GNU/Linux 12 (bookworm)";
  facts.arch = "x86_64";
  facts.cpu_factor_micros = factor_micros;
  return facts;
}

void AddGpus(MachineFacts* facts, int count) {
  for (int i = 0; i < count; ++i) {
    facts->gpus.push_back({"NVIDIA H100 80GB HBM3", "h100", 81559, absl::StrCat("GPU-", i)});
  }
}

TEST(ToMachineSpecTest, AttributesAreExactMicros) {
  MachineFacts facts = Facts(16, 1'350'000, 64 * kGiB, 500 * kGiB + kGiB / 2);
  AddGpus(&facts, 2);
  const core::MachineSpec spec = ToMachineSpec(facts, {}, core::ExchangeConfig::Default());
  EXPECT_EQ(spec.name, "box");
  EXPECT_EQ(spec.attributes.at("cpu.model").text, "Test CPU");
  EXPECT_FALSE(spec.attributes.at("cpu.model").is_number);
  EXPECT_EQ(spec.attributes.at("cpu.cores").number_micros, 16'000'000);
  EXPECT_TRUE(spec.attributes.at("cpu.factor").is_number);
  EXPECT_EQ(spec.attributes.at("cpu.factor").number_micros, 1'350'000);
  EXPECT_EQ(spec.attributes.at("mem.gib").number_micros, 64'000'000);
  EXPECT_EQ(spec.attributes.at("disk.gib").number_micros, 500'500'000);
  EXPECT_EQ(spec.attributes.at("gpu.count").number_micros, 2'000'000);
  EXPECT_EQ(spec.attributes.at("gpu.model").text, "h100");
  EXPECT_EQ(spec.attributes.at("gpu.mem_gib").number_micros, 79'647'460);  // 81559 / 1024
  EXPECT_EQ(spec.attributes.at("os").text, "Debian GNU/Linux 12 (bookworm)");
  EXPECT_EQ(spec.attributes.at("arch").text, "x86_64");
}

TEST(ToMachineSpecTest, CpuCapacityIsFloorOfCoresTimesFactor) {
  // 3 cores * 1.35 = 4.05 -> 4; plenty of RAM and disk.
  const core::MachineSpec spec = ToMachineSpec(Facts(3, 1'350'000, 64 * kGiB, 1000 * kGiB), {},
                                               core::ExchangeConfig::Default());
  EXPECT_EQ(spec.capacity.at("cpu"), 4);
  EXPECT_EQ(spec.capacity.count("gpu.h100"), 0u);  // No GPUs: no gpu market.
  EXPECT_EQ(spec.attributes.count("gpu.model"), 0u);
}

TEST(ToMachineSpecTest, CpuCapacityBoundedBySharedRam) {
  // 16 cores at 1.0, but 8 GiB * 0.5 = 4 GiB shared: 2 slots of 2 GiB.
  SharePolicy share;
  share.mem_micros = 500'000;
  const core::MachineSpec spec = ToMachineSpec(Facts(16, 1'000'000, 8 * kGiB, 1000 * kGiB), share,
                                               core::ExchangeConfig::Default());
  EXPECT_EQ(spec.capacity.at("cpu"), 2);
}

TEST(ToMachineSpecTest, CpuCapacityBoundedBySharedDisk) {
  // 16 cores, 64 GiB, 35 GiB free disk: 3 slots of 10 GiB.
  const core::MachineSpec spec = ToMachineSpec(Facts(16, 1'000'000, 64 * kGiB, 35 * kGiB), {},
                                               core::ExchangeConfig::Default());
  EXPECT_EQ(spec.capacity.at("cpu"), 3);
  SharePolicy share;
  share.disk_micros = 500'000;  // 17.5 GiB -> 1 slot.
  EXPECT_EQ(ToMachineSpec(Facts(16, 1'000'000, 64 * kGiB, 35 * kGiB), share,
                          core::ExchangeConfig::Default())
                .capacity.at("cpu"),
            1);
}

TEST(ToMachineSpecTest, CpuCapacityUsesSharedCores) {
  SharePolicy share;
  share.cores_micros = 250'000;  // 10 cores * 0.25 * 1.2 = 3.0 -> 3.
  EXPECT_EQ(ToMachineSpec(Facts(10, 1'200'000, 64 * kGiB, 1000 * kGiB), share,
                          core::ExchangeConfig::Default())
                .capacity.at("cpu"),
            3);
}

TEST(ToMachineSpecTest, FactorZeroOffersNothing) {
  EXPECT_EQ(
      ToMachineSpec(Facts(64, 0, 256 * kGiB, 1000 * kGiB), {}, core::ExchangeConfig::Default())
          .capacity.at("cpu"),
      0);
}

TEST(ToMachineSpecTest, GpuCapacityBoundedByGpus) {
  MachineFacts facts = Facts(128, 1'000'000, 2048 * kGiB, 10'000 * kGiB);
  AddGpus(&facts, 8);
  EXPECT_EQ(ToMachineSpec(facts, {}, core::ExchangeConfig::Default()).capacity.at("gpu.h100"), 8);
}

TEST(ToMachineSpecTest, GpuCapacityBoundedByStandardVcpus) {
  // 8 GPUs but 40 cores * 1.0 = 40 vCPU: 5 slots of 8 vCPU.
  MachineFacts facts = Facts(40, 1'000'000, 2048 * kGiB, 10'000 * kGiB);
  AddGpus(&facts, 8);
  EXPECT_EQ(ToMachineSpec(facts, {}, core::ExchangeConfig::Default()).capacity.at("gpu.h100"), 5);
}

TEST(ToMachineSpecTest, GpuCapacityBoundedByRam) {
  // 256 GiB / 64 GiB = 4.
  MachineFacts facts = Facts(128, 1'000'000, 256 * kGiB, 10'000 * kGiB);
  AddGpus(&facts, 8);
  EXPECT_EQ(ToMachineSpec(facts, {}, core::ExchangeConfig::Default()).capacity.at("gpu.h100"), 4);
}

TEST(ToMachineSpecTest, GpuCapacityBoundedByDisk) {
  // 250 GiB / 100 GiB = 2.
  MachineFacts facts = Facts(128, 1'000'000, 2048 * kGiB, 250 * kGiB);
  AddGpus(&facts, 8);
  EXPECT_EQ(ToMachineSpec(facts, {}, core::ExchangeConfig::Default()).capacity.at("gpu.h100"), 2);
}

TEST(ToMachineSpecTest, GpuOfAModelWithoutAMarketIsNotOffered) {
  MachineFacts facts = Facts(128, 1'000'000, 2048 * kGiB, 10'000 * kGiB);
  facts.gpus.push_back({"NVIDIA L4", "l4", 23034, "GPU-1"});
  const core::MachineSpec spec = ToMachineSpec(facts, {}, core::ExchangeConfig::Default());
  EXPECT_EQ(spec.capacity.count("gpu.h100"), 0u);
  EXPECT_EQ(spec.capacity.count("gpu.l4"), 0u);
  EXPECT_EQ(spec.attributes.at("gpu.model").text, "l4");
  EXPECT_EQ(spec.capacity.at("cpu"), 128);
}

// ---- Discover with fixtures ----------------------------------------------------------------

class DiscoverFixtureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/ocx_discovery_" + std::to_string(getpid());
    ASSERT_EQ(system(("mkdir -p " + dir_).c_str()), 0);
    Write("cpuinfo", "processor : 0\nmodel name : Fixture CPU 9000\n");
    Write("meminfo", "MemTotal: 16777216 kB\nMemAvailable: 8388608 kB\n");
    Write("os-release", "PRETTY_NAME=\"Fixture OS 1\"\n");
    options_.cpuinfo_path = dir_ + "/cpuinfo";
    options_.meminfo_path = dir_ + "/meminfo";
    options_.os_release_path = dir_ + "/os-release";
    options_.disk_dir = dir_;
    options_.run_benchmark = false;
  }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
  }
  static CommandRunner Returns(absl::StatusOr<CommandResult> result,
                               std::vector<std::string>* seen = nullptr) {
    return [result, seen](const std::vector<std::string>& argv) {
      if (seen != nullptr) *seen = argv;
      return result;
    };
  }
  std::string dir_;
  DiscoveryOptions options_;
};

TEST_F(DiscoverFixtureTest, ReadsInjectedSources) {
  std::vector<std::string> argv;
  options_.run_command =
      Returns(CommandResult{0,
                            "NVIDIA H100 80GB HBM3, 81559, GPU-a\nNVIDIA H100 80GB HBM3, "
                            "81559, GPU-b\n"},
              &argv);
  const absl::StatusOr<MachineFacts> facts = Discover(options_);
  ASSERT_TRUE(facts.ok()) << facts.status();
  EXPECT_EQ(facts->cpu_model, "Fixture CPU 9000");
  EXPECT_EQ(facts->mem_total_bytes, 16 * kGiB);
  EXPECT_EQ(facts->mem_available_bytes, 8 * kGiB);
  EXPECT_EQ(facts->os, "Fixture OS 1");
  EXPECT_EQ(facts->gpus.size(), 2u);
  EXPECT_TRUE(facts->warnings.empty());
  EXPECT_FALSE(facts->benchmark_ran);
  ASSERT_EQ(argv.size(), 3u);
  EXPECT_EQ(argv[0], "nvidia-smi");
  EXPECT_EQ(argv[1], "--query-gpu=name,memory.total,uuid");
  EXPECT_EQ(argv[2], "--format=csv,noheader,nounits");
}

TEST_F(DiscoverFixtureTest, AbsentNvidiaSmiMeansNoGpusAndNoWarning) {
  options_.run_command = Returns(absl::NotFoundError("nvidia-smi: not found"));
  const absl::StatusOr<MachineFacts> facts = Discover(options_);
  ASSERT_TRUE(facts.ok()) << facts.status();
  EXPECT_TRUE(facts->gpus.empty());
  EXPECT_TRUE(facts->warnings.empty());
}

TEST_F(DiscoverFixtureTest, FailingNvidiaSmiIsAWarning) {
  options_.run_command = Returns(CommandResult{
      9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"});
  const absl::StatusOr<MachineFacts> facts = Discover(options_);
  ASSERT_TRUE(facts.ok()) << facts.status();
  EXPECT_TRUE(facts->gpus.empty());
  ASSERT_EQ(facts->warnings.size(), 1u);
  EXPECT_NE(facts->warnings[0].find("exit status 9"), std::string::npos);
  EXPECT_NE(facts->warnings[0].find("couldn't communicate"), std::string::npos);
}

TEST_F(DiscoverFixtureTest, NvidiaSmiThatCannotRunIsAWarning) {
  options_.run_command = Returns(absl::DeadlineExceededError("timed out"));
  const absl::StatusOr<MachineFacts> facts = Discover(options_);
  ASSERT_TRUE(facts.ok()) << facts.status();
  ASSERT_EQ(facts->warnings.size(), 1u);
  EXPECT_NE(facts->warnings[0].find("timed out"), std::string::npos);
}

TEST_F(DiscoverFixtureTest, MissingModelNameAndOsReleaseAreWarnings) {
  Write("cpuinfo", "processor : 0\n");
  options_.os_release_path = dir_ + "/does-not-exist";
  options_.run_command = Returns(absl::NotFoundError("absent"));
  const absl::StatusOr<MachineFacts> facts = Discover(options_);
  ASSERT_TRUE(facts.ok()) << facts.status();
  EXPECT_EQ(facts->cpu_model, "unknown");
  EXPECT_FALSE(facts->os.empty());
  EXPECT_EQ(facts->warnings.size(), 2u);
}

TEST_F(DiscoverFixtureTest, UnreadableMeminfoIsAnError) {
  options_.meminfo_path = dir_ + "/does-not-exist";
  options_.run_command = Returns(absl::NotFoundError("absent"));
  EXPECT_FALSE(Discover(options_).ok());
  options_.meminfo_path = dir_ + "/cpuinfo";  // No MemTotal.
  EXPECT_FALSE(Discover(options_).ok());
}

TEST_F(DiscoverFixtureTest, MissingDiskDirIsAnError) {
  options_.disk_dir = dir_ + "/no/such/dir";
  options_.run_command = Returns(absl::NotFoundError("absent"));
  const absl::StatusOr<MachineFacts> facts = Discover(options_);
  ASSERT_FALSE(facts.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(facts.status()));
}

TEST(RunCommandTest, MissingProgramIsNotFound) {
  EXPECT_TRUE(absl::IsNotFound(RunCommand({"ocx-no-such-program-xyz"}).status()));
}

TEST(RunCommandTest, CapturesOutputAndExitStatus) {
  const absl::StatusOr<CommandResult> result =
      RunCommand({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_status, 3);
  EXPECT_NE(result->output.find("out"), std::string::npos);
  EXPECT_NE(result->output.find("err"), std::string::npos);
}

// ---- The real machine ----------------------------------------------------------------------

TEST(DiscoverRealMachineTest, GivesSaneValues) {
  DiscoveryOptions options;
  options.disk_dir = ::testing::TempDir();
  options.benchmark_units = 3;
  options.benchmark_repeats = 1;
  const absl::StatusOr<MachineFacts> facts = Discover(options);
  ASSERT_TRUE(facts.ok()) << facts.status();
  EXPECT_GE(facts->logical_cores, 1);
  EXPECT_GT(facts->mem_total_bytes, 0);
  EXPECT_GE(facts->mem_available_bytes, 0);
  EXPECT_LE(facts->mem_available_bytes, facts->mem_total_bytes);
  EXPECT_GE(facts->disk_free_bytes, 0);
  EXPECT_FALSE(facts->cpu_model.empty());
  EXPECT_FALSE(facts->os.empty());
  EXPECT_FALSE(facts->kernel.empty());
  EXPECT_FALSE(facts->arch.empty());
  EXPECT_TRUE(facts->benchmark_ran);
  EXPECT_GT(facts->benchmark.score, 0);
  for (const std::string& warning : facts->warnings) std::printf("warning: %s\n", warning.c_str());
  const core::MachineSpec spec = ToMachineSpec(*facts, {}, core::ExchangeConfig::Default());
  EXPECT_EQ(spec.capacity.count("cpu"), 1u);
}

}  // namespace
}  // namespace ocx::agent
