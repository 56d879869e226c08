// Machine discovery for the provider agent: what this machine has (CPU, RAM, disk, OS, NVIDIA
// GPUs), how fast one core is against the reference (RULEBOOK section 1, "Standard vCPU"),
// and what that makes the machine offer: a core::MachineSpec with attributes and per-market
// capacity. The sources (/proc, /etc/os-release, nvidia-smi) are injectable so that tests feed
// fixture text; the parsers are exposed for the same reason.
// Thread-compatible: free functions without shared state.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "src/core/types.h"

namespace ocx::agent {

// ---- Single-core benchmark (version v1) ----------------------------------------------------
// One work unit: fill a fixed 4096-entry uint32 buffer from a xorshift32 stream seeded by the
// unit's index, sort it (std::sort), and fold it into a checksum (FNV-1a style). Integer only,
// deterministic, cache-resident (16 KiB). A measurement runs kBenchmarkUnits units on the
// calling thread and is repeated kBenchmarkRepeats times; the score is the best run's work
// units per second. Changing anything here changes the version and the reference score.
inline constexpr char kBenchmarkVersion[] = "v1";
inline constexpr int kBenchmarkBufferSize = 4096;
inline constexpr int kBenchmarkUnits = 2000;  // About 0.36 s on the development machine.
inline constexpr int kBenchmarkRepeats = 3;
// Score of benchmark v1 on the development machine (a 2-vCPU "AMD EPYC" VM, Debian, GCC,
// RelWithDebInfo -O2), measured with `ocx provider discover --json` eight times: best-of-3
// scores 5051 to 5649 units/s, median about 5600. The reference is 5500, a little below the
// median and rounded to two digits, so that the development machine itself rates 1.00 in
// ordinary runs despite noise (a factor is rounded down). Benchmark v1, reference v1.
inline constexpr int64_t kReferenceScore = 5500;
// RULEBOOK section 1: the factor is capped at 2.0 and rounded down to a multiple of 0.05.
inline constexpr int64_t kFactorStepMicros = 50'000;
inline constexpr int64_t kFactorMaxMicros = 2'000'000;

// Runs `units` work units once; returns the checksum (the same for the same `units` on every
// machine, so the work cannot be optimised away and a test can pin it).
uint32_t RunBenchmarkUnits(int units);

struct BenchmarkScore {
  int64_t score = 0;  // Work units per second, best of the repeats (0 if unmeasurable).
  uint32_t checksum = 0;
};
// Times RunBenchmarkUnits(units) `repeats` times and keeps the fastest. Reads the clock.
BenchmarkScore MeasureBenchmark(int units = kBenchmarkUnits, int repeats = kBenchmarkRepeats);

// score / reference in micro-units, rounded down to a multiple of 0.05 and capped at 2.0.
// Integer arithmetic only, so that 1.05 stays 1.05. reference must be positive.
int64_t FactorMicros(int64_t score, int64_t reference = kReferenceScore);

// ---- Facts ---------------------------------------------------------------------------------
struct GpuFacts {
  std::string name;     // As nvidia-smi prints it: "NVIDIA H100 80GB HBM3".
  std::string model;    // GpuModelFromName(name): "h100".
  int64_t mem_mib = 0;  // 0 when nvidia-smi said [N/A].
  std::string uuid;     // Empty when [N/A].
};

struct MachineFacts {
  std::string hostname;
  std::string cpu_model;  // "unknown" when /proc/cpuinfo has no "model name".
  int32_t logical_cores = 0;
  int64_t mem_total_bytes = 0;
  int64_t mem_available_bytes = 0;
  std::string disk_dir;
  int64_t disk_free_bytes = 0;  // Available to unprivileged users (f_bavail).
  std::string os;               // "Debian GNU/Linux 12 (bookworm)".
  std::string kernel;           // uname release: "6.1.0-18-amd64".
  std::string arch;             // uname machine: "x86_64".
  std::vector<GpuFacts> gpus;
  bool benchmark_ran = false;
  BenchmarkScore benchmark;
  int64_t cpu_factor_micros = 0;  // FactorMicros(benchmark.score); 0 if not measured.
  // Things that went wrong without making discovery fail (nvidia-smi failing, unparsable
  // lines, a missing field). Shown to the provider.
  std::vector<std::string> warnings;
};

// What running a command gave. Exit status as from a normal exit; -1 when killed.
struct CommandResult {
  int exit_status = 0;
  std::string output;  // stdout and stderr together, bounded.
};
// Runs argv (argv[0] looked up in PATH). NotFound: no such program. Other errors: it could
// not be run (or timed out).
using CommandRunner = std::function<absl::StatusOr<CommandResult>(const std::vector<std::string>&)>;

// Runs a program with fork/exec, output bounded by kCommandOutputMax, killed after timeout_ms.
inline constexpr size_t kCommandOutputMax = 1 << 20;
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         int timeout_ms = 20'000);

struct DiscoveryOptions {
  std::string cpuinfo_path = "/proc/cpuinfo";
  std::string meminfo_path = "/proc/meminfo";
  std::string os_release_path = "/etc/os-release";
  std::string disk_dir = ".";  // Where jobs' scratch space would live.
  std::string nvidia_smi = "nvidia-smi";
  CommandRunner run_command;  // Empty: RunCommand.
  bool run_benchmark = true;
  int benchmark_units = kBenchmarkUnits;
  int benchmark_repeats = kBenchmarkRepeats;
};

// Reads the real machine (through the sources in options). Errors: a required source is
// unreadable or unparsable (/proc/meminfo, the disk directory). GPU trouble is a warning.
absl::StatusOr<MachineFacts> Discover(const DiscoveryOptions& options);

// ---- Parsers (exposed for tests) ----------------------------------------------------------
struct CpuInfo {
  std::string model;       // First "model name"; empty if none.
  int32_t processors = 0;  // "processor" lines.
};
CpuInfo ParseCpuInfo(std::string_view text);

struct MemInfo {
  int64_t total_bytes = 0;
  int64_t available_bytes = 0;
};
// Needs MemTotal; MemAvailable falls back to MemFree + Buffers + Cached (old kernels).
absl::StatusOr<MemInfo> ParseMemInfo(std::string_view text);

// PRETTY_NAME, else "ID VERSION_ID", else ID, else "" (quotes removed).
std::string ParseOsRelease(std::string_view text);

struct NvidiaSmiParse {
  std::vector<GpuFacts> gpus;
  std::vector<std::string> warnings;
};
// Parses `nvidia-smi --query-gpu=name,memory.total,uuid --format=csv,noheader,nounits`: one
// GPU a line, "name, MiB, uuid". Blank lines are ignored; a line that does not have three
// fields or whose memory is neither a number nor [N/A] is skipped with a warning.
NvidiaSmiParse ParseNvidiaSmi(std::string_view text);

// "NVIDIA H100 80GB HBM3" -> "h100", "Tesla V100-SXM2-16GB" -> "v100",
// "NVIDIA GeForce RTX 4090" -> "rtx4090": brand words (nvidia, geforce, tesla, quadro) are
// dropped, and the words up to the first one with a digit are joined, lower-case, [a-z0-9].
std::string GpuModelFromName(std::string_view name);

// ---- What the machine offers ---------------------------------------------------------------
// Fractions of the machine to share, in micro-units: 1'000'000 = all. Each in (0, 1'000'000].
struct SharePolicy {
  int64_t cores_micros = 1'000'000;
  int64_t mem_micros = 1'000'000;
  int64_t disk_micros = 1'000'000;
};

// Attributes (measured facts of the whole machine: cpu.model, cpu.cores, cpu.factor, mem.gib,
// disk.gib, gpu.count, gpu.model, gpu.mem_gib, os, arch) and capacity per market of `config`:
// `cpu` = floor(shared cores * factor) bounded by shared RAM / slot RAM and shared disk /
// slot disk; `gpu.<model>` (only when that market exists and the machine has such GPUs) =
// min(GPUs / slot GPUs, standard vCPUs / slot vCPUs, RAM / slot RAM, disk / slot disk).
// Shared RAM is a fraction of the total RAM (not of what happens to be free now). Each
// market's capacity is what the machine could offer in that market alone.
core::MachineSpec ToMachineSpec(const MachineFacts& facts, const SharePolicy& share,
                                const core::ExchangeConfig& config);

}  // namespace ocx::agent
