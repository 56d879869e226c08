// `ocx provider ...`: the provider's side. `ocx provider discover` shows what this machine has,
// its standard-vCPU factor (RULEBOOK section 1) and what it would offer in each market of the
// default exchange configuration; `ocx provider run --exchange URL` runs the agent
// (src/agent/agent.h) until SIGTERM or SIGINT.
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "src/agent/agent.h"
#include "src/agent/discovery.h"
#include "src/agent/policy.h"
#include "src/sandbox/bubblewrap_sandbox.h"
#include "src/base/decimal.h"
#include "src/cli/commands.h"

namespace ocx::cli {
namespace {

struct DiscoverOptions {
  bool json = false;
  std::string share_cores = "1";
  std::string share_mem = "1";
  std::string share_disk = "1";
  std::string dir = ".";
};

constexpr int64_t kGiB = int64_t{1} << 30;

// A share fraction in (0, 1], exact in micro-units; -1 when malformed or out of range.
int64_t ParseShare(const std::string& text) {
  const base::ParsedMicros parsed = base::ParseMicros(text);
  if (!parsed.ok() || parsed.micros <= 0 || parsed.micros > base::kMicrosPerUnit) return -1;
  return parsed.micros;
}

// Bytes as GiB with two decimals, for people.
std::string Gib(int64_t bytes) {
  const int64_t hundredths = static_cast<int64_t>(static_cast<__int128>(bytes) * 100 / kGiB);
  char text[48];
  std::snprintf(text, sizeof(text), "%lld.%02lld GiB", static_cast<long long>(hundredths / 100),
                static_cast<long long>(hundredths % 100));
  return text;
}

nlohmann::json AttributeJson(const core::AttributeValue& value) {
  if (!value.is_number) return value.text;
  return base::FormatMicros(value.number_micros);  // Exact decimal string, never a float.
}

void PrintJson(const agent::MachineFacts& facts, const core::MachineSpec& spec,
               const agent::SharePolicy& share) {
  nlohmann::json gpus = nlohmann::json::array();
  for (const agent::GpuFacts& gpu : facts.gpus) {
    gpus.push_back(
        {{"name", gpu.name}, {"model", gpu.model}, {"mem_mib", gpu.mem_mib}, {"uuid", gpu.uuid}});
  }
  nlohmann::json attributes = nlohmann::json::object();
  for (const auto& [name, value] : spec.attributes) attributes[name] = AttributeJson(value);
  nlohmann::json capacity = nlohmann::json::object();
  for (const auto& [market, slots] : spec.capacity) capacity[market] = slots;
  const nlohmann::json out = {
      {"facts",
       {{"hostname", facts.hostname},
        {"cpu_model", facts.cpu_model},
        {"logical_cores", facts.logical_cores},
        {"mem_total_bytes", facts.mem_total_bytes},
        {"mem_available_bytes", facts.mem_available_bytes},
        {"disk_dir", facts.disk_dir},
        {"disk_free_bytes", facts.disk_free_bytes},
        {"os", facts.os},
        {"kernel", facts.kernel},
        {"arch", facts.arch},
        {"gpus", gpus}}},
      {"benchmark",
       {{"version", agent::kBenchmarkVersion},
        {"score", facts.benchmark.score},
        {"reference_score", agent::kReferenceScore}}},
      {"factor", base::FormatMicros(facts.cpu_factor_micros)},
      {"share",
       {{"cores", base::FormatMicros(share.cores_micros)},
        {"mem", base::FormatMicros(share.mem_micros)},
        {"disk", base::FormatMicros(share.disk_micros)}}},
      {"attributes", attributes},
      {"capacity", capacity},
      {"warnings", facts.warnings},
  };
  std::printf("%s\n", out.dump(2).c_str());
}

void PrintTable(const agent::MachineFacts& facts, const core::MachineSpec& spec,
                const agent::SharePolicy& share) {
  auto row = [](const char* name, const std::string& value) {
    std::printf("  %-16s %s\n", name, value.c_str());
  };
  std::printf("Machine\n");
  row("hostname", facts.hostname);
  row("cpu", facts.cpu_model);
  row("logical cores", std::to_string(facts.logical_cores));
  row("memory", Gib(facts.mem_total_bytes) + " (" + Gib(facts.mem_available_bytes) + " available)");
  row("disk free", Gib(facts.disk_free_bytes) + " in " + facts.disk_dir);
  row("os", facts.os);
  row("kernel", facts.kernel + " (" + facts.arch + ")");
  if (facts.gpus.empty()) row("gpus", "none");
  for (size_t i = 0; i < facts.gpus.size(); ++i) {
    const agent::GpuFacts& gpu = facts.gpus[i];
    row(i == 0 ? "gpus" : "",
        gpu.name + " (" + gpu.model + ", " + std::to_string(gpu.mem_mib) + " MiB)");
  }
  std::printf("\nBenchmark %s (single core)\n", agent::kBenchmarkVersion);
  row("score", std::to_string(facts.benchmark.score) + " units/s (reference " +
                   std::to_string(agent::kReferenceScore) + ")");
  char factor[32];
  std::snprintf(factor, sizeof(factor), "%lld.%02lld",
                static_cast<long long>(facts.cpu_factor_micros / 1'000'000),
                static_cast<long long>(facts.cpu_factor_micros % 1'000'000 / 10'000));
  row("factor", std::string(factor) + " (score / reference, down to 0.05, at most 2)");
  std::printf("\nOffer (sharing %s of cores, %s of memory, %s of disk)\n",
              base::FormatMicros(share.cores_micros).c_str(),
              base::FormatMicros(share.mem_micros).c_str(),
              base::FormatMicros(share.disk_micros).c_str());
  std::printf("  %-16s %s\n", "market", "slots");
  for (const auto& [market, slots] : spec.capacity) {
    std::printf("  %-16s %lld\n", market.c_str(), static_cast<long long>(slots));
  }
  if (!facts.warnings.empty()) {
    std::printf("\nWarnings\n");
    for (const std::string& warning : facts.warnings) std::printf("  - %s\n", warning.c_str());
  }
}

int RunDiscover(const DiscoverOptions& options) {
  agent::SharePolicy share;
  const std::pair<const std::string*, int64_t*> shares[] = {
      {&options.share_cores, &share.cores_micros},
      {&options.share_mem, &share.mem_micros},
      {&options.share_disk, &share.disk_micros}};
  const char* names[] = {"--share-cores", "--share-mem", "--share-disk"};
  for (int i = 0; i < 3; ++i) {
    *shares[i].second = ParseShare(*shares[i].first);
    if (*shares[i].second < 0) {
      std::fprintf(stderr,
                   "ocx provider discover: %s must be a fraction in (0, 1] with at most 6 "
                   "decimals, got '%s'\n",
                   names[i], shares[i].first->c_str());
      return 2;
    }
  }
  struct stat info {};
  if (stat(options.dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode) ||
      access(options.dir.c_str(), R_OK | X_OK) != 0) {
    std::fprintf(stderr, "ocx provider discover: --dir '%s' is not a readable directory\n",
                 options.dir.c_str());
    return 2;
  }

  agent::DiscoveryOptions discovery;
  discovery.disk_dir = options.dir;
  const absl::StatusOr<agent::MachineFacts> facts = agent::Discover(discovery);
  if (!facts.ok()) {
    std::fprintf(stderr, "ocx provider discover: %s\n",
                 std::string(facts.status().message()).c_str());
    return 1;
  }
  const core::MachineSpec spec =
      agent::ToMachineSpec(*facts, share, core::ExchangeConfig::Default());
  if (options.json) {
    PrintJson(*facts, spec, share);
  } else {
    PrintTable(*facts, spec, share);
  }
  return 0;
}

struct RunOptions {
  std::string exchange;
  std::string token_file;
  std::string data_dir = "./ocx-provider";
  std::string policy_file;
  std::string market = "cpu";
  int warm_sandboxes = 1;
};

// `ocx provider run`: the agent, until SIGTERM or SIGINT.
int RunAgent(const RunOptions& options) {
  auto fail = [](const std::string& message) {
    std::fprintf(stderr, "ocx provider run: %s\n", message.c_str());
    return 2;
  };
  if (options.exchange.empty()) return fail("--exchange URL is required");
  std::string token;
  if (const char* env = std::getenv("OCX_TOKEN"); env != nullptr && env[0] != '\0') token = env;
  if (!options.token_file.empty()) {
    std::ifstream in(options.token_file);
    if (!in || !std::getline(in, token)) {
      return fail("cannot read the provider token from " + options.token_file);
    }
  }
  if (token.empty()) {
    return fail("the provider account's API token is needed: --token-file FILE or OCX_TOKEN");
  }
  agent::OwnerPolicy policy = agent::DefaultOwnerPolicy();
  if (!options.policy_file.empty()) {
    auto loaded = agent::LoadOwnerPolicy(options.policy_file);
    if (!loaded.ok()) return fail(std::string(loaded.status().message()));
    policy = *loaded;
  }
  if (::geteuid() != 0) {
    return fail("the agent runs jobs under an unprivileged uid of their own with cgroup "
                "limits, which needs root");
  }
  auto sandbox = sandbox::BubblewrapSandbox::Create({});
  if (!sandbox.ok()) return fail("the sandbox is not usable: " + sandbox.status().ToString());

  // Signals are taken synchronously by this thread; the agent's threads inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  agent::AgentOptions agent_options;
  agent_options.exchange_url = options.exchange;
  agent_options.provider_token = token;
  agent_options.data_dir = options.data_dir;
  agent_options.policy = policy;
  agent_options.market = options.market;
  agent_options.sandbox = sandbox->get();
  agent_options.warm_sandboxes = options.warm_sandboxes;
  agent_options.log = [](const std::string& line) {
    std::fprintf(stderr, "ocx provider: %s\n", line.c_str());
  };
  auto started = agent::Agent::Start(std::move(agent_options));
  if (!started.ok()) return fail(started.status().ToString());
  std::unique_ptr<agent::Agent> running = std::move(*started);
  std::fprintf(stderr, "ocx provider: machine %llu is connecting to %s (Ctrl-C stops)\n",
               static_cast<unsigned long long>(running->machine()), options.exchange.c_str());
  running->RunInBackground();
  int received = 0;
  sigwait(&signals, &received);
  std::fprintf(stderr, "ocx provider: stopping (running jobs are killed)\n");
  running->Stop();
  return 0;
}

}  // namespace

void RegisterProvider(CLI::App& app, Registry& registry) {
  CLI::App* provider = app.add_subcommand("provider", "Sell this machine's compute");
  provider->require_subcommand(1);

  auto run = std::make_shared<RunOptions>();
  CLI::App* run_command = provider->add_subcommand(
      "run", "Run the provider agent: register, offer capacity, run leased jobs");
  run_command->add_option("--exchange", run->exchange, "The exchange's URL")->required();
  run_command->add_option("--token-file", run->token_file,
                          "File holding the provider account's API token (or set OCX_TOKEN)");
  run_command->add_option("--data-dir", run->data_dir,
                          "The machine's identity and the jobs' directories")
      ->capture_default_str();
  run_command->add_option("--policy", run->policy_file,
                          "Owner policy TOML (docs/formats/provider-policy.md); default: share "
                          "everything, always, at 0.05");
  run_command->add_option("--market", run->market, "The market to sell in")->capture_default_str();
  run_command
      ->add_option("--warm-sandboxes", run->warm_sandboxes,
                   "Sandboxes kept prepared so that a task starts at once (0: none)")
      ->capture_default_str()
      ->check(CLI::Range(0, 64));
  run_command->footer(
      "Needs root (jobs run in the bubblewrap sandbox under a uid of their own).\n"
      "Example: ocx provider run --exchange http://127.0.0.1:8080 --token-file bob.token \\\n"
      "           --policy examples/provider/policy.toml");
  registry.Add(run_command, [run] { return RunAgent(*run); });

  auto options = std::make_shared<DiscoverOptions>();
  CLI::App* discover = provider->add_subcommand(
      "discover", "Show what this machine has, its vCPU factor, and what it would offer");
  discover->add_flag("--json", options->json, "Print JSON: facts, factor and capacity");
  discover
      ->add_option("--share-cores", options->share_cores,
                   "Fraction of the cores to share, in (0, 1]")
      ->capture_default_str();
  discover->add_option("--share-mem", options->share_mem, "Fraction of the RAM to share, in (0, 1]")
      ->capture_default_str();
  discover
      ->add_option("--share-disk", options->share_disk,
                   "Fraction of the free disk to share, in (0, 1]")
      ->capture_default_str();
  discover->add_option("--dir", options->dir, "Directory whose free disk space jobs would use")
      ->capture_default_str();
  discover->footer(
      "Runs a single-core benchmark (about a second) to measure the factor.\n"
      "Example: ocx provider discover --share-cores 0.5 --dir /var/tmp");
  registry.Add(discover, [options] { return RunDiscover(*options); });
}

}  // namespace ocx::cli
