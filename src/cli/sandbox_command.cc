// `ocx sandbox exec -- CMD...`: runs one command in the job sandbox, the way a provider's
// agent runs a leased job, so that a provider can try it. `ocx sandbox bench` measures the
// sandbox's start-up overhead (docs/benchmarks.md, "`ocx sandbox bench`").
// See docs/sandbox.md for what is isolated how.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "src/cli/commands.h"
#include "src/sandbox/bubblewrap_sandbox.h"
#include "src/sandbox/sandbox.h"

namespace ocx::cli {
namespace {

using sandbox::BubblewrapSandbox;
using sandbox::JobResult;
using sandbox::JobSpec;

struct SandboxExecOptions {
  int slots = 1;
  std::string memory;  // e.g. "512M"; empty: slots x 2 GiB
  int64_t pids = 0;
  double timeout_s = 0;
  bool network = false;
  std::string work_dir;
  bool keep = false;
  std::vector<std::string> env;
  bool timing = false;
  std::string cgroup_parent;
  bool no_cgroup = false;
  std::vector<std::string> command;
};

struct SandboxBenchOptions {
  int repeat = 50;
  bool no_cgroup = false;
};

// "512M", "2G", "2GiB", "1048576": binary units. Returns -1 when malformed or overflowing.
int64_t ParseBytes(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[digits]))) {
    ++digits;
  }
  int64_t value;
  if (digits == 0 || !absl::SimpleAtoi(std::string(text.substr(0, digits)), &value)) return -1;
  std::string unit = absl::AsciiStrToUpper(std::string(text.substr(digits)));
  int shift = 0;
  if (unit.empty() || unit == "B") {
    shift = 0;
  } else if (unit == "K" || unit == "KB" || unit == "KIB") {
    shift = 10;
  } else if (unit == "M" || unit == "MB" || unit == "MIB") {
    shift = 20;
  } else if (unit == "G" || unit == "GB" || unit == "GIB") {
    shift = 30;
  } else if (unit == "T" || unit == "TB" || unit == "TIB") {
    shift = 40;
  } else {
    return -1;
  }
  if (value > (INT64_MAX >> shift)) return -1;
  return value << shift;
}

std::string FormatBytes(int64_t bytes) {
  char buffer[64];
  if (bytes < 0) return "n/a";
  if (bytes < (1 << 20)) {
    std::snprintf(buffer, sizeof(buffer), "%.1f KiB", static_cast<double>(bytes) / 1024);
  } else if (bytes < (int64_t{1} << 30)) {
    std::snprintf(buffer, sizeof(buffer), "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  } else {
    std::snprintf(buffer, sizeof(buffer), "%.2f GiB",
                  static_cast<double>(bytes) / (int64_t{1} << 30));
  }
  return buffer;
}

double Seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }
double Millis(std::chrono::nanoseconds d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

void WriteFully(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // e.g. EPIPE: the reader went away; the job runs on, its output is dropped
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

// The token SIGINT/SIGTERM cancel. Guarded by being set before the handlers are installed
// and cleared after they are removed.
std::atomic<sandbox::CancelToken*> g_cancel_token{nullptr};

void CancelOnSignal(int) {
  if (sandbox::CancelToken* token = g_cancel_token.load()) token->Cancel();
}

absl::StatusOr<std::unique_ptr<BubblewrapSandbox>> MakeSandbox(const std::string& cgroup_parent,
                                                               bool no_cgroup) {
  BubblewrapSandbox::Options options;
  options.cgroup_parent = cgroup_parent;
  options.require_cgroup = !no_cgroup;
  return BubblewrapSandbox::Create(options);
}

absl::StatusOr<std::string> MakeTempWorkDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      std::string(tmp != nullptr && tmp[0] == '/' ? tmp : "/tmp") + "/ocx-sandbox-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError(std::string("mkdtemp: ") + std::strerror(errno));
  }
  return pattern;
}

int RunSandboxExec(const SandboxExecOptions& options) {
  const char* kName = "ocx sandbox exec";
  if (options.command.empty()) {
    std::fprintf(stderr, "%s: no command given; usage: ocx sandbox exec [OPTIONS] -- CMD...\n",
                 kName);
    return 2;
  }
  JobSpec spec;
  spec.argv = options.command;
  spec.env = sandbox::DefaultJobEnv();
  for (const std::string& assignment : options.env) {
    size_t eq = assignment.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "%s: --env wants NAME=VALUE, not '%s'\n", kName, assignment.c_str());
      return 2;
    }
    std::string key = assignment.substr(0, eq);
    auto it = std::find_if(spec.env.begin(), spec.env.end(),
                           [&](const auto& kv) { return kv.first == key; });
    if (it != spec.env.end()) spec.env.erase(it);
    spec.env.emplace_back(key, assignment.substr(eq + 1));
  }
  spec.slots = options.slots;
  if (!options.memory.empty()) {
    spec.memory_bytes = ParseBytes(options.memory);
    if (spec.memory_bytes <= 0) {
      std::fprintf(stderr, "%s: --mem must be a size such as 512M or 2G (binary units), not '%s'\n",
                   kName, options.memory.c_str());
      return 2;
    }
  }
  spec.pids_max = options.pids;
  if (!std::isfinite(options.timeout_s) || options.timeout_s < 0 || options.timeout_s > 1e7) {
    std::fprintf(stderr, "%s: --timeout must be a number of seconds >= 0\n", kName);
    return 2;
  }
  spec.timeout = std::chrono::milliseconds(std::llround(options.timeout_s * 1000));
  spec.network = options.network;
  spec.stdout_sink = sandbox::OutputSink::Callback([](std::string_view s) { WriteFully(1, s); });
  spec.stderr_sink = sandbox::OutputSink::Callback([](std::string_view s) { WriteFully(2, s); });

  // Check the spec before creating anything, so bad input is a usage error (2). The work
  // directory is checked once it is known.
  spec.work_dir = "/nonexistent-yet";
  if (absl::Status status = sandbox::ValidateJobSpec(spec); !status.ok()) {
    std::fprintf(stderr, "%s: %s\n", kName, std::string(status.message()).c_str());
    return 2;
  }

  auto box = MakeSandbox(options.cgroup_parent, options.no_cgroup);
  if (!box.ok()) {
    std::fprintf(stderr, "%s: %s\n", kName, box.status().ToString().c_str());
    return 1;
  }
  if ((*box)->cgroup_version() == 0) {
    std::fprintf(stderr, "%s: warning: no cgroup (%s): no memory, pids or CPU limits\n", kName,
                 std::string((*box)->cgroup_status().message()).c_str());
  }
  const bool temp_work_dir = options.work_dir.empty();
  if (!temp_work_dir) {
    char resolved[PATH_MAX];
    if (::realpath(options.work_dir.c_str(), resolved) == nullptr) {
      std::fprintf(stderr, "%s: --workdir %s: %s\n", kName, options.work_dir.c_str(),
                   std::strerror(errno));
      return 2;
    }
    spec.work_dir = resolved;
  }
  if (temp_work_dir) {
    auto dir = MakeTempWorkDir();
    if (!dir.ok()) {
      std::fprintf(stderr, "%s: %s\n", kName, dir.status().ToString().c_str());
      return 1;
    }
    spec.work_dir = *dir;
  }

  auto token = sandbox::CancelToken::Create();
  if (!token.ok()) {
    std::fprintf(stderr, "%s: %s\n", kName, token.status().ToString().c_str());
    return 1;
  }
  spec.cancel = token->get();
  g_cancel_token.store(token->get());
  struct sigaction cancel_action {
  }, old_int{}, old_term{}, ignore{}, old_pipe{};
  cancel_action.sa_handler = CancelOnSignal;
  sigemptyset(&cancel_action.sa_mask);
  ::sigaction(SIGINT, &cancel_action, &old_int);
  ::sigaction(SIGTERM, &cancel_action, &old_term);
  // A closed stdout must not kill us before the job is cleaned up.
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, &old_pipe);

  absl::StatusOr<JobResult> result = (*box)->Run(spec);

  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  ::sigaction(SIGPIPE, &old_pipe, nullptr);
  g_cancel_token.store(nullptr);

  if (temp_work_dir) {
    if (options.keep) {
      std::fprintf(stderr, "%s: kept the work directory %s\n", kName, spec.work_dir.c_str());
    } else if (absl::Status wiped = sandbox::Wipe(spec.work_dir); !wiped.ok()) {
      std::fprintf(stderr, "%s: %s\n", kName, wiped.ToString().c_str());
    }
  }
  if (!result.ok()) {
    std::fprintf(stderr, "%s: %s\n", kName, result.status().ToString().c_str());
    return absl::IsInvalidArgument(result.status()) ? 2 : 1;
  }

  std::string ending;
  if (result->term_signal != 0) {
    const char* name = sigabbrev_np(result->term_signal);
    ending = "killed by signal " + std::to_string(result->term_signal) +
             (name != nullptr ? std::string(" (SIG") + name + ")" : std::string());
  } else {
    ending = "exit " + std::to_string(result->exit_code);
  }
  std::string limits = result->cgroup_version == 0
                           ? ", no cgroup"
                           : ", cgroup v" + std::to_string(result->cgroup_version) +
                                 (result->swap_limited ? "" : " (swap not limited)");
  std::fprintf(stderr,
               "ocx sandbox: %s, oom %s, timed out %s%s%s, wall %.3f s, cpu %.3f s, "
               "peak memory %s%s%s\n",
               ending.c_str(), result->oom_killed ? "yes" : "no", result->timed_out ? "yes" : "no",
               result->cancelled ? ", cancelled" : "",
               result->pids_limit_hit ? ", pids limit hit" : "", Seconds(result->wall_time),
               Seconds(result->cpu_time), FormatBytes(result->memory_peak_bytes).c_str(),
               limits.c_str(),
               result->stdout_truncated || result->stderr_truncated ? ", output truncated" : "");
  if (options.timing) {
    const JobResult::Timing& t = result->timing;
    std::fprintf(stderr,
                 "ocx sandbox: timing: prepare %.2f ms, spawn %.2f ms, run %.2f ms, "
                 "teardown %.2f ms (start-up overhead: docs/benchmarks.md)\n",
                 Millis(t.prepare), Millis(t.spawn), Millis(t.run), Millis(t.teardown));
  }
  return result->exit_code;
}

// ---- ocx sandbox bench -----------------------------------------------------------------

int64_t RealtimeNanos() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// fork + exec + wait of argv, unsandboxed; returns what the program printed.
bool PlainRun(const std::vector<std::string>& args, std::string* output) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  std::vector<char*> argv;
  std::vector<std::string> copy = args;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  char buffer[256];
  ssize_t n;
  while ((n = ::read(fds[0], buffer, sizeof(buffer))) > 0) output->append(buffer, n);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

struct Summary {
  double median, p90, min;
};

Summary Summarize(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  auto at = [&](double q) {
    return values[std::min(values.size() - 1, static_cast<size_t>(q * values.size()))];
  };
  return {at(0.5), at(0.9), values.front()};
}

int RunSandboxBench(const SandboxBenchOptions& options) {
  const char* kName = "ocx sandbox bench";
  if (options.repeat < 1 || options.repeat > 100000) {
    std::fprintf(stderr, "%s: --repeat must be 1..100000\n", kName);
    return 2;
  }
  auto box = MakeSandbox("", options.no_cgroup);
  if (!box.ok()) {
    std::fprintf(stderr, "%s: %s\n", kName, box.status().ToString().c_str());
    return 1;
  }
  auto dir = MakeTempWorkDir();
  if (!dir.ok()) {
    std::fprintf(stderr, "%s: %s\n", kName, dir.status().ToString().c_str());
    return 1;
  }
  using Clock = std::chrono::steady_clock;
  std::vector<double> plain_true, plain_first, sandbox_true, sandbox_first, prepared_first;
  std::vector<double> prepare, spawn, run, teardown;
  int failures = 0;
  for (int i = 0; i < options.repeat; ++i) {
    // /bin/true, start to reaped.
    std::string ignored;
    auto t0 = Clock::now();
    if (!PlainRun({"/bin/true"}, &ignored)) ++failures;
    plain_true.push_back(Millis(Clock::now() - t0));

    JobSpec spec;
    spec.argv = {"/bin/true"};
    spec.env = sandbox::DefaultJobEnv();
    spec.work_dir = *dir;
    t0 = Clock::now();
    absl::StatusOr<JobResult> result = (*box)->Run(spec);
    sandbox_true.push_back(Millis(Clock::now() - t0));
    if (!result.ok() || result->exit_code != 0) {
      std::fprintf(
          stderr, "%s: %s\n", kName,
          result.ok() ? "/bin/true failed in the sandbox" : result.status().ToString().c_str());
      (void)sandbox::Wipe(*dir);
      return 1;
    }
    prepare.push_back(Millis(result->timing.prepare));
    spawn.push_back(Millis(result->timing.spawn));
    run.push_back(Millis(result->timing.run));
    teardown.push_back(Millis(result->timing.teardown));

    // Launch to the job's first output: `date +%s%N` prints the realtime clock (which no
    // namespace changes) as it starts; the difference from just before the launch.
    std::string printed;
    int64_t start = RealtimeNanos();
    if (!PlainRun({"/bin/date", "+%s%N"}, &printed)) ++failures;
    int64_t printed_ns = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(printed), &printed_ns)) {
      plain_first.push_back(static_cast<double>(printed_ns - start) / 1e6);
    }
    printed.clear();
    spec.argv = {"/bin/date", "+%s%N"};
    spec.stdout_sink = sandbox::OutputSink::Callback([&](std::string_view s) { printed += s; });
    start = RealtimeNanos();
    result = (*box)->Run(spec);
    if (result.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(printed), &printed_ns)) {
      sandbox_first.push_back(static_cast<double>(printed_ns - start) / 1e6);
    } else {
      ++failures;
    }

    // The same handed to a sandbox prepared beforehand (what the agent keeps ready).
    auto prepared = (*box)->Prepare({.work_dir = *dir});
    if (!prepared.ok()) {
      std::fprintf(stderr, "%s: %s\n", kName, prepared.status().ToString().c_str());
      (void)sandbox::Wipe(*dir);
      return 1;
    }
    printed.clear();
    spec.prepared = prepared->get();
    start = RealtimeNanos();
    result = (*box)->Run(spec);
    spec.prepared = nullptr;
    if (result.ok() && result->prewarmed &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(printed), &printed_ns)) {
      prepared_first.push_back(static_cast<double>(printed_ns - start) / 1e6);
    } else {
      ++failures;
    }
  }
  (void)sandbox::Wipe(*dir);
  if (failures > 0 || plain_first.empty() || sandbox_first.empty() || prepared_first.empty()) {
    std::fprintf(stderr, "%s: %d runs failed\n", kName, failures);
    return 1;
  }
  auto print = [](const char* what, const Summary& s) {
    std::printf("  %-44s median %7.2f ms  p90 %7.2f ms  min %7.2f ms\n", what, s.median, s.p90,
                s.min);
  };
  std::printf("sandbox start-up, %d runs each (%s)\n", options.repeat,
              (*box)->cgroup_version() == 0
                  ? "no cgroup"
                  : ("cgroup v" + std::to_string((*box)->cgroup_version())).c_str());
  const Summary pt = Summarize(plain_true), st = Summarize(sandbox_true);
  const Summary pf = Summarize(plain_first), sf = Summarize(sandbox_first);
  print("/bin/true, plain fork+exec+wait", pt);
  print("/bin/true, sandbox Run() total", st);
  print("  of which prepare (cgroup, fds, args)", Summarize(prepare));
  print("  of which spawn (fork -> bwrap exec'd)", Summarize(spawn));
  print("  of which run (bwrap exec'd -> exited)", Summarize(run));
  print("  of which teardown (kill check, rmdir)", Summarize(teardown));
  print("launch -> first output of date, plain", pf);
  print("launch -> first output of date, sandbox", sf);
  const Summary rf = Summarize(prepared_first);
  print("  the same in a prepared sandbox", rf);
  std::printf(
      "overhead (medians): %.2f ms per job in all, %.2f ms to the job's first "
      "instruction; %.2f ms in a prepared sandbox\n",
      st.median - pt.median, sf.median - pf.median, rf.median - pf.median);
  return 0;
}

}  // namespace

void RegisterSandbox(CLI::App& app, Registry& registry) {
  CLI::App* sandbox = app.add_subcommand("sandbox", "The job sandbox (bubblewrap + cgroups)");
  sandbox->require_subcommand(1);

  auto options = std::make_shared<SandboxExecOptions>();
  CLI::App* exec = sandbox->add_subcommand(
      "exec", "Run CMD the way a provider runs a leased job: isolated, limited, then cleaned up");
  exec->add_option("--slots", options->slots, "cpu slots: 1 CPU and 2 GiB per slot")
      ->check(CLI::Range(1, sandbox::kSlotsMax))
      ->capture_default_str();
  exec->add_option("--mem", options->memory,
                   "Memory limit, RAM without swap, e.g. 512M or 2G (default: slots x 2G)");
  exec->add_option("--pids", options->pids, "Process and thread limit (default: slots x 512)");
  exec->add_option("--timeout", options->timeout_s, "Wall-time limit in seconds (0: none)")
      ->capture_default_str();
  exec->add_flag("--net", options->network, "Give the job the host's network");
  exec->add_option("--workdir", options->work_dir,
                   "Host directory bound at /work (default: a fresh one, wiped afterwards)");
  exec->add_flag("--keep", options->keep, "Keep the fresh work directory (print its path)");
  exec->add_option("--env", options->env, "NAME=VALUE for the job (repeatable)")
      ->allow_extra_args(false);
  exec->add_flag("--timing", options->timing, "Also print where the start-up time went");
  exec->add_option("--cgroup-parent", options->cgroup_parent,
                   "Cgroup for job cgroups, e.g. /ocx (default: below this process's)");
  exec->add_flag("--no-cgroup", options->no_cgroup,
                 "Run without a cgroup if none is usable: NO memory/pids/CPU limits");
  exec->add_option("command", options->command, "The command and its arguments, after --");
  exec->footer(
      "Prints the job's output live, then a summary line on stderr. Exit code: the job's\n"
      "(128+N when killed by signal N), 1 when the sandbox itself failed, 2 on bad usage.\n"
      "Example: ocx sandbox exec --mem 512M --timeout 10 -- /bin/sh -c 'echo hi'");
  registry.Add(exec, [options] { return RunSandboxExec(*options); });

  auto bench_options = std::make_shared<SandboxBenchOptions>();
  CLI::App* bench = sandbox->add_subcommand(
      "bench", "Measure the sandbox's start-up overhead against a plain fork+exec");
  bench->add_option("--repeat", bench_options->repeat, "Runs of each kind")->capture_default_str();
  bench->add_flag("--no-cgroup", bench_options->no_cgroup, "Measure without a cgroup");
  registry.Add(bench, [bench_options] { return RunSandboxBench(*bench_options); });
}

}  // namespace ocx::cli
