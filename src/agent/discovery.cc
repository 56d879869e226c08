#include "src/agent/discovery.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "src/base/assert.h"
#include "src/base/status.h"

namespace ocx::agent {
namespace {

constexpr int64_t kMicros = 1'000'000;
constexpr int64_t kMiB = 1024 * 1024;
constexpr int64_t kGiB = 1024 * kMiB;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && absl::ascii_isspace(static_cast<unsigned char>(s.front()))) {
    s.remove_prefix(1);
  }
  while (!s.empty() && absl::ascii_isspace(static_cast<unsigned char>(s.back()))) {
    s.remove_suffix(1);
  }
  return s;
}

std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    lines.push_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

// "key<spaces>: value" -> true with key and value trimmed.
bool SplitKeyValue(std::string_view line, char separator, std::string_view* key,
                   std::string_view* value) {
  const size_t at = line.find(separator);
  if (at == std::string_view::npos) return false;
  *key = Trim(line.substr(0, at));
  *value = Trim(line.substr(at + 1));
  return true;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", path));
  return contents.str();
}

int64_t MulDiv(int64_t a, int64_t b, int64_t c) {  // floor(a * b / c), a, b >= 0, c > 0.
  OCX_ASSERT(c > 0);
  const __int128 product = static_cast<__int128>(a) * b / c;
  return product > std::numeric_limits<int64_t>::max() ? std::numeric_limits<int64_t>::max()
                                                       : static_cast<int64_t>(product);
}

core::AttributeValue Number(int64_t micros) {
  core::AttributeValue value;
  value.is_number = true;
  value.number_micros = micros;
  return value;
}

core::AttributeValue Text(std::string text) {
  core::AttributeValue value;
  value.text = std::move(text);
  return value;
}

bool IsNotAvailable(std::string_view field) {
  return field.empty() || field == "[N/A]" || field == "N/A" || field == "[Not Supported]";
}

std::string FindInPath(const std::string& program) {
  if (program.find('/') != std::string::npos) {
    return access(program.c_str(), X_OK) == 0 ? program : "";
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    const size_t end = dirs.find(':');
    std::string dir(dirs.substr(0, end));
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    if (end == std::string_view::npos) return "";
    dirs.remove_prefix(end + 1);
  }
}

std::string FirstLine(std::string_view text) {
  text = Trim(text);
  return std::string(Trim(text.substr(0, text.find('\n'))));
}

}  // namespace

// ---- Benchmark ------------------------------------------------------------------------------

uint32_t RunBenchmarkUnits(int units) {
  std::vector<uint32_t> buffer(kBenchmarkBufferSize);
  uint32_t checksum = 2166136261u;
  for (int unit = 0; unit < units; ++unit) {
    uint32_t x = 0x9E3779B9u ^ static_cast<uint32_t>(unit + 1);
    for (uint32_t& v : buffer) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      v = x;
    }
    std::sort(buffer.begin(), buffer.end());
    for (size_t i = 0; i < buffer.size(); i += 7) {
      checksum = (checksum ^ buffer[i]) * 16777619u;
    }
  }
  return checksum;
}

BenchmarkScore MeasureBenchmark(int units, int repeats) {
  OCX_ASSERT(units > 0 && repeats > 0);
  BenchmarkScore best;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const uint32_t checksum = RunBenchmarkUnits(units);
    const auto elapsed_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::steady_clock::now() - start)
                                .count();
    best.checksum = checksum;
    const int64_t score = MulDiv(units, 1'000'000'000, std::max<int64_t>(elapsed_ns, 1));
    best.score = std::max(best.score, score);
  }
  return best;
}

int64_t FactorMicros(int64_t score, int64_t reference) {
  OCX_ASSERT(reference > 0);
  if (score <= 0) return 0;
  const int64_t ratio_micros = MulDiv(score, kMicros, reference);
  const int64_t rounded = ratio_micros / kFactorStepMicros * kFactorStepMicros;
  return std::min(rounded, kFactorMaxMicros);
}

// ---- Parsers -------------------------------------------------------------------------------

CpuInfo ParseCpuInfo(std::string_view text) {
  CpuInfo info;
  for (std::string_view line : SplitLines(text)) {
    std::string_view key, value;
    if (!SplitKeyValue(line, ':', &key, &value)) continue;
    if (key == "processor") ++info.processors;
    if (key == "model name" && info.model.empty()) info.model = std::string(value);
  }
  return info;
}

absl::StatusOr<MemInfo> ParseMemInfo(std::string_view text) {
  int64_t total = -1, available = -1, free = -1, buffers = 0, cached = 0;
  for (std::string_view line : SplitLines(text)) {
    std::string_view key, value;
    if (!SplitKeyValue(line, ':', &key, &value)) continue;
    int64_t* target = key == "MemTotal"       ? &total
                      : key == "MemAvailable" ? &available
                      : key == "MemFree"      ? &free
                      : key == "Buffers"      ? &buffers
                      : key == "Cached"       ? &cached
                                              : nullptr;
    if (target == nullptr) continue;
    std::string_view number = value;
    if (number.size() >= 2 && number.substr(number.size() - 2) == "kB") {
      number = Trim(number.substr(0, number.size() - 2));
    }
    int64_t kib = 0;
    if (!absl::SimpleAtoi(std::string(number), &kib) || kib < 0 ||
        kib > std::numeric_limits<int64_t>::max() / 1024) {
      return absl::InvalidArgumentError(absl::StrCat("meminfo: bad value for ", std::string(key),
                                                     ": '", std::string(value), "'"));
    }
    *target = kib * 1024;
  }
  if (total <= 0) return absl::InvalidArgumentError("meminfo: no MemTotal");
  if (available < 0) available = free < 0 ? 0 : free + buffers + cached;
  return MemInfo{total, std::min(available, total)};
}

std::string ParseOsRelease(std::string_view text) {
  std::string pretty, id, version;
  for (std::string_view line : SplitLines(text)) {
    line = Trim(line);
    if (line.empty() || line.front() == '#') continue;
    std::string_view key, value;
    if (!SplitKeyValue(line, '=', &key, &value)) continue;
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    if (key == "PRETTY_NAME") pretty = std::string(value);
    if (key == "ID") id = std::string(value);
    if (key == "VERSION_ID") version = std::string(value);
  }
  if (!pretty.empty()) return pretty;
  if (!id.empty() && !version.empty()) return id + " " + version;
  return id;
}

NvidiaSmiParse ParseNvidiaSmi(std::string_view text) {
  NvidiaSmiParse result;
  int line_number = 0;
  for (std::string_view line : SplitLines(text)) {
    ++line_number;
    line = Trim(line);
    if (line.empty()) continue;
    std::vector<std::string_view> fields;
    while (true) {
      const size_t comma = line.find(',');
      fields.push_back(Trim(line.substr(0, comma)));
      if (comma == std::string_view::npos) break;
      line.remove_prefix(comma + 1);
    }
    const std::string where = absl::StrCat("nvidia-smi line ", line_number, ": ");
    if (fields.size() != 3) {
      result.warnings.push_back(absl::StrCat(where, "expected 3 fields (name, memory, uuid), got ",
                                             fields.size(), "; skipped"));
      continue;
    }
    GpuFacts gpu;
    if (IsNotAvailable(fields[0])) {
      gpu.name = "unknown";
      result.warnings.push_back(absl::StrCat(where, "GPU name not available"));
    } else {
      gpu.name = std::string(fields[0]);
    }
    gpu.model = GpuModelFromName(gpu.name);
    if (IsNotAvailable(fields[1])) {
      result.warnings.push_back(absl::StrCat(where, "GPU memory not available"));
    } else {
      std::string mem(fields[1]);
      if (mem.size() > 3 && mem.substr(mem.size() - 3) == "MiB") {
        mem = std::string(Trim(mem.substr(0, mem.size() - 3)));
      }
      if (!absl::SimpleAtoi(mem, &gpu.mem_mib) || gpu.mem_mib < 0) {
        result.warnings.push_back(
            absl::StrCat(where, "memory '", std::string(fields[1]), "' is not a number; skipped"));
        continue;
      }
    }
    if (!IsNotAvailable(fields[2])) gpu.uuid = std::string(fields[2]);
    result.gpus.push_back(std::move(gpu));
  }
  return result;
}

std::string GpuModelFromName(std::string_view name) {
  std::vector<std::string> words;
  std::string word;
  auto flush = [&] {
    if (!word.empty() && word != "nvidia" && word != "geforce" && word != "tesla" &&
        word != "quadro") {
      words.push_back(word);
    }
    word.clear();
  };
  for (char c : name) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(u)) {
      word.push_back(absl::ascii_tolower(u));
    } else if (c == ' ' || c == '-' || c == '_' || c == '/') {
      flush();
    }
  }
  flush();
  std::string model;
  for (const std::string& w : words) {
    model += w;
    if (std::any_of(w.begin(), w.end(), [](char c) { return absl::ascii_isdigit(c); })) break;
  }
  return model.empty() ? "unknown" : model;
}

// ---- Running nvidia-smi ----------------------------------------------------------------------

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv, int timeout_ms) {
  OCX_ASSERT(!argv.empty());
  const std::string program = FindInPath(argv[0]);
  if (program.empty()) return absl::NotFoundError(absl::StrCat(argv[0], ": not found"));
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    const int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, 0);
    dup2(pipe_fds[1], 1);
    dup2(pipe_fds[1], 2);
    execv(program.c_str(), args.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  CommandResult result;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  bool timed_out = false;
  char chunk[4096];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd pfd{pipe_fds[0], POLLIN, 0};
    const int ready = poll(&pfd, 1, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;  // Timeout is caught at the top.
    const ssize_t n = read(pipe_fds[0], chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    const size_t room = kCommandOutputMax - result.output.size();
    result.output.append(chunk, std::min(room, static_cast<size_t>(n)));
  }
  close(pipe_fds[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return absl::DeadlineExceededError(
        absl::StrCat(argv[0], " did not finish within ", timeout_ms, " ms"));
  }
  result.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// ---- Discover ------------------------------------------------------------------------------

absl::StatusOr<MachineFacts> Discover(const DiscoveryOptions& options) {
  MachineFacts facts;

  utsname names{};
  if (uname(&names) == 0) {
    facts.hostname = names.nodename;
    facts.kernel = names.release;
    facts.arch = names.machine;
  } else {
    facts.warnings.push_back(absl::StrCat("uname: ", std::strerror(errno)));
  }

  CpuInfo cpu;
  if (absl::StatusOr<std::string> text = ReadFile(options.cpuinfo_path); text.ok()) {
    cpu = ParseCpuInfo(*text);
  } else {
    facts.warnings.push_back(std::string(text.status().message()));
  }
  facts.cpu_model = cpu.model.empty() ? "unknown" : cpu.model;
  if (cpu.model.empty()) facts.warnings.push_back("cpuinfo: no 'model name'; cpu.model unknown");

  // The cores this process may run on: a container or taskset limit counts.
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) facts.logical_cores = CPU_COUNT(&set);
  if (facts.logical_cores <= 0) {
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    facts.logical_cores = online > 0 ? static_cast<int32_t>(online) : cpu.processors;
  }
  if (facts.logical_cores <= 0) return absl::InternalError("cannot count the CPU cores");

  OCX_ASSIGN_OR_RETURN(const std::string meminfo_text, ReadFile(options.meminfo_path));
  OCX_ASSIGN_OR_RETURN(const MemInfo mem, ParseMemInfo(meminfo_text));
  facts.mem_total_bytes = mem.total_bytes;
  facts.mem_available_bytes = mem.available_bytes;

  facts.disk_dir = options.disk_dir;
  struct statvfs disk {};
  if (statvfs(options.disk_dir.c_str(), &disk) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot stat the file system of ",
                                                   options.disk_dir, ": ", std::strerror(errno)));
  }
  facts.disk_free_bytes =
      MulDiv(static_cast<int64_t>(disk.f_bavail), static_cast<int64_t>(disk.f_frsize), 1);

  if (absl::StatusOr<std::string> text = ReadFile(options.os_release_path); text.ok()) {
    facts.os = ParseOsRelease(*text);
  }
  if (facts.os.empty()) {
    facts.os = absl::StrCat(names.sysname[0] != '\0' ? names.sysname : "unknown");
    facts.warnings.push_back("os-release: no PRETTY_NAME or ID; os is the kernel name");
  }

  const CommandRunner run =
      options.run_command
          ? options.run_command
          : CommandRunner([](const std::vector<std::string>& argv) { return RunCommand(argv); });
  absl::StatusOr<CommandResult> smi = run(
      {options.nvidia_smi, "--query-gpu=name,memory.total,uuid", "--format=csv,noheader,nounits"});
  if (!smi.ok()) {
    if (!absl::IsNotFound(smi.status())) {  // No nvidia-smi: no NVIDIA GPUs, nothing to say.
      facts.warnings.push_back(absl::StrCat("nvidia-smi could not be run: ", smi.status().message(),
                                            "; GPUs not counted"));
    }
  } else if (smi->exit_status != 0) {
    const std::string first = FirstLine(smi->output);
    facts.warnings.push_back(absl::StrCat("nvidia-smi failed (exit status ", smi->exit_status, ")",
                                          first.empty() ? "" : ": ", first, "; GPUs not counted"));
  } else {
    NvidiaSmiParse parsed = ParseNvidiaSmi(smi->output);
    facts.gpus = std::move(parsed.gpus);
    for (std::string& w : parsed.warnings) facts.warnings.push_back(std::move(w));
  }

  if (options.run_benchmark) {
    facts.benchmark = MeasureBenchmark(options.benchmark_units, options.benchmark_repeats);
    facts.benchmark_ran = true;
    facts.cpu_factor_micros = FactorMicros(facts.benchmark.score);
  }
  return facts;
}

// ---- MachineSpec ---------------------------------------------------------------------------

core::MachineSpec ToMachineSpec(const MachineFacts& facts, const SharePolicy& share,
                                const core::ExchangeConfig& config) {
  OCX_ASSERT(share.cores_micros > 0 && share.cores_micros <= kMicros);
  OCX_ASSERT(share.mem_micros > 0 && share.mem_micros <= kMicros);
  OCX_ASSERT(share.disk_micros > 0 && share.disk_micros <= kMicros);
  core::MachineSpec spec;
  spec.name = facts.hostname;
  auto& a = spec.attributes;
  a["cpu.model"] = Text(facts.cpu_model);
  a["cpu.cores"] = Number(int64_t{facts.logical_cores} * kMicros);
  a["cpu.factor"] = Number(facts.cpu_factor_micros);
  a["mem.gib"] = Number(MulDiv(facts.mem_total_bytes, kMicros, kGiB));
  a["disk.gib"] = Number(MulDiv(facts.disk_free_bytes, kMicros, kGiB));
  a["gpu.count"] = Number(static_cast<int64_t>(facts.gpus.size()) * kMicros);
  if (!facts.gpus.empty()) {
    a["gpu.model"] = Text(facts.gpus.front().model);
    int64_t mem_mib = facts.gpus.front().mem_mib;
    for (const GpuFacts& gpu : facts.gpus) mem_mib = std::min(mem_mib, gpu.mem_mib);
    a["gpu.mem_gib"] = Number(MulDiv(mem_mib, kMicros, 1024));
  }
  a["os"] = Text(facts.os);
  a["arch"] = Text(facts.arch);

  // Standard vCPUs in micro-units: cores * share * factor.
  const int64_t std_vcpu_micros =
      MulDiv(int64_t{facts.logical_cores} * share.cores_micros, facts.cpu_factor_micros, kMicros);
  const int64_t shared_mem_mib = MulDiv(facts.mem_total_bytes, share.mem_micros, kMicros) / kMiB;
  const int64_t shared_disk_gib = MulDiv(facts.disk_free_bytes, share.disk_micros, kMicros) / kGiB;

  for (const core::MarketConfig& market : config.markets) {
    const core::SlotSpec& slot = market.slot;
    OCX_ASSERT(slot.vcpus > 0 && slot.mem_mib > 0 && slot.disk_gib > 0 && slot.gpus >= 0);
    int64_t slots = std_vcpu_micros / (int64_t{slot.vcpus} * kMicros);
    slots = std::min(slots, shared_mem_mib / slot.mem_mib);
    slots = std::min(slots, shared_disk_gib / slot.disk_gib);
    if (slot.gpus > 0) {
      const int64_t gpus =
          std::count_if(facts.gpus.begin(), facts.gpus.end(),
                        [&](const GpuFacts& g) { return g.model == slot.gpu_model; });
      if (gpus == 0) continue;
      slots = std::min(slots, gpus / slot.gpus);
    } else if (market.name.rfind("gpu.", 0) == 0) {
      continue;  // A gpu market without GPUs in its slot: not ours to guess.
    }
    spec.capacity[market.name] = static_cast<core::Quantity>(std::max<int64_t>(slots, 0));
  }
  return spec;
}

}  // namespace ocx::agent
