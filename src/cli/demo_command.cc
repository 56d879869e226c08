// `ocx demo`: a whole market on this machine, in about a minute. It starts a real exchange
// (`ocx exchange`, a child process, SQLite and journal in a temporary directory), three real
// provider agents with different shares, prices and regions (each its own Ed25519 identity and
// owner policy, jobs in the real sandbox), and a funded consumer; then it runs real jobs
// through the market (one task, several tasks, constraints that pick a region) and prints the
// asks, trades, leases, logs, bills, the providers' earnings and a check of the whole ledger.
// It stops everything cleanly, or keeps it running with --keep.
//
// The three providers share this one machine: each is given its own slots (a demo can only
// pretend to be three computers), but every job really runs sandboxed, is really billed from
// its signed usage, and every micro-credit is accounted for at the end.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "nlohmann/json.hpp"
#include "src/agent/agent.h"
#include "src/agent/discovery.h"
#include "src/agent/policy.h"
#include "src/base/decimal.h"
#include "src/base/files.h"
#include "src/cli/commands.h"
#include "src/cli/job_runner.h"
#include "src/client/exchange_client.h"
#include "src/client/local_exchange.h"
#include "src/sandbox/bubblewrap_sandbox.h"

namespace ocx::cli {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct DemoOptions {
  bool keep = false;
  std::string data_dir;  // Empty: a fresh temporary directory, removed at the end.
};

// One simulated provider: who sells what, where, at which price.
struct DemoProvider {
  const char* account;
  const char* machine;
  const char* region;
  const char* price;  // Credits per slot-hour.
  int slots;
  const char* tier;
};

constexpr DemoProvider kProviders[] = {
    {"alice", "alice-home-pc", "eu", "0.03", 1, "home"},
    {"bob", "bob-lab", "us", "0.045", 2, "lab"},
    {"carol", "carol-datacenter", "asia", "0.06", 2, "datacenter"},
};
constexpr const char* kConsumer = "dana";
constexpr const char* kConsumerFunds = "100";

std::atomic<bool> g_interrupted{false};
// The agents' log lines are shown while the market runs, not over the closing summary.
std::atomic<bool> g_agents_quiet{false};
void OnSignal(int) { g_interrupted.store(true); }

// A bold heading, so the story is easy to follow in a terminal.
void Heading(const std::string& text) {
  const bool tty = ::isatty(STDOUT_FILENO) != 0;
  std::cout << "\n" << (tty ? "\033[1m" : "") << "== " << text << (tty ? "\033[0m" : "")
            << std::endl;
}

std::string PolicyToml(const DemoProvider& p) {
  return std::string("[pricing]\nrule = \"fixed\"\nprice = \"") + p.price +
         "\"\n[machine]\nname = \"" + p.machine + "\"\nregion = \"" + p.region +
         "\"\nlabels = { tier = \"" + p.tier + "\", demo = \"true\" }\nmarkets = [\"cpu\"]\n";
}

absl::StatusOr<std::unique_ptr<client::ExchangeClient>> ClientWith(const std::string& url,
                                                                   const std::string& token) {
  client::HttpClientOptions options;
  options.bearer_token = token;
  return client::ExchangeClient::Connect(url, options);
}

void PrintBook(client::ExchangeClient& client) {
  auto book = client.Call("GET", "/v1/markets/cpu/book?depth=10");
  if (!book.ok()) {
    std::cout << "  (book unavailable: " << book.status().message() << ")\n";
    return;
  }
  std::cout << "  cpu market asks (price per slot-hour x slots):";
  if ((*book)["asks"].empty()) std::cout << " none";
  for (const Json& level : (*book)["asks"]) {
    std::cout << "  " << level[0].get<std::string>() << " x" << level[1].get<int64_t>();
  }
  std::cout << "\n";
}

struct DemoJob {
  std::string title;
  JobFile file;
};

std::vector<DemoJob> DemoJobs(const std::string& inputs_dir) {
  std::vector<DemoJob> jobs;
  {
    DemoJob job;
    job.title = "one task with an input file and an output folder";
    job.file.command = {"sh", "-c",
                        "echo \"words in the input: $(wc -w < words.txt)\"; mkdir -p out; "
                        "tr -s ' ' '\\n' < words.txt | sort | uniq -c | sort -rn | head -3 "
                        "> out/top3.txt; echo \"running as uid $(id -u) in $(pwd); network "
                        "interfaces: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | "
                        "tr '\\n' ' ')\"; "
                        "echo 'now 2 s of (pretend) work, so the bill has seconds on it'; sleep 2"};
    job.file.inputs = {"words.txt"};
    job.file.outputs = {"out"};
    job.file.max_price = "0.05";
    job.file.base_dir = inputs_dir;
    jobs.push_back(job);
  }
  {
    DemoJob job;
    job.title = "four tasks of a parameter sweep (OCX_TASK_INDEX picks each task's share)";
    job.file.command = {
        "sh", "-c",
        "lo=$((OCX_TASK_INDEX * 150000 + 1)); hi=$(((OCX_TASK_INDEX + 1) * 150000)); "
        "n=$(awk -v lo=$lo -v hi=$hi 'BEGIN { c = 0; for (i = lo; i <= hi; i++) "
        "{ p = (i > 1); for (d = 2; d * d <= i; d++) if (i % d == 0) { p = 0; break } c += p } "
        "print c }'); mkdir -p out; echo \"primes in [$lo, $hi]: $n\" | tee out/primes.txt"};
    job.file.outputs = {"out"};
    job.file.tasks = 4;
    job.file.max_price = "0.07";
    job.file.base_dir = inputs_dir;
    jobs.push_back(job);
  }
  {
    DemoJob job;
    job.title = "constraints: region == \"us\" (bob's lab, though alice is cheaper)";
    job.file.command = {"sh", "-c", "echo \"hello from a machine in the us\"; uname -sm; sleep 1"};
    job.file.constraints = "region == \"us\"";
    job.file.max_price = "0.07";
    job.file.base_dir = inputs_dir;
    jobs.push_back(job);
  }
  return jobs;
}

// The whole ledger, from the exchange itself; false when something does not add up.
bool CheckLedger(client::ExchangeClient& op, client::ExchangeClient& consumer,
                 uint64_t consumer_id, const std::vector<uint64_t>& provider_ids,
                 base::ParsedMicros total_billed) {
  bool ok = true;
  auto ledger = op.Call("GET", "/v1/ledger");
  if (!ledger.ok()) {
    std::cout << "  cannot read the ledger: " << ledger.status().message() << "\n";
    return false;
  }
  const Json& totals = (*ledger)["totals"];
  auto micros = [](const Json& value) {
    return value.is_string() ? base::ParseMicros(value.get<std::string>()).micros : 0;
  };
  std::cout << "  deposits " << (*ledger)["deposits"].get<std::string>() << ", withdrawals "
            << (*ledger)["withdrawals"].get<std::string>() << "\n";
  for (const char* kind : {"available", "held", "escrow", "earnings", "fees", "insurance",
                           "external"}) {
    std::cout << "  " << kind << ": " << totals.value(kind, std::string("0")) << "\n";
  }
  const bool balanced = (*ledger)["balanced"].get<bool>();
  std::cout << "  every balance sums to " << (*ledger)["sum"].get<std::string>()
            << (balanced ? "  [ok: double entry holds]" : "  [FAILED]") << "\n";
  ok = ok && balanced;
  // Nothing is still held or in escrow once every job is over.
  const int64_t stuck = micros(totals.value("held", Json("0"))) +
                        micros(totals.value("escrow", Json("0")));
  std::cout << "  held + escrow after the jobs: " << base::FormatMicros(stuck)
            << (stuck == 0 ? "  [ok]" : "  [FAILED]") << "\n";
  ok = ok && stuck == 0;
  // What the consumer spent is what the bills said, to the micro-credit.
  auto account = consumer.Call("GET", "/v1/accounts/" + std::to_string(consumer_id));
  if (account.ok()) {
    const int64_t spent = base::ParseMicros(kConsumerFunds).micros -
                          micros((*account)["account"]["balances"]["available"]);
    const bool matches = spent == total_billed.micros;
    std::cout << "  " << kConsumer << " spent " << base::FormatMicros(spent)
              << ", the bills total " << base::FormatMicros(total_billed.micros)
              << (matches ? "  [ok]" : "  [FAILED]") << "\n";
    ok = ok && matches;
  }
  // Providers earned the bills less the maker fee; fees and the pool took the rest.
  int64_t earned = 0;
  for (const uint64_t id : provider_ids) {
    auto provider = op.Call("GET", "/v1/accounts/" + std::to_string(id));
    if (provider.ok()) earned += micros((*provider)["account"]["balances"]["earnings"]);
  }
  const int64_t fees = micros(totals.value("fees", Json("0"))) +
                       micros(totals.value("insurance", Json("0")));
  const bool split = earned + fees == total_billed.micros;
  std::cout << "  providers earned " << base::FormatMicros(earned) << " + fees and insurance "
            << base::FormatMicros(fees) << " = " << base::FormatMicros(earned + fees)
            << (split ? "  [ok: equals the bills]" : "  [FAILED]") << "\n";
  return ok && split;
}

int RunDemo(const DemoOptions& options) {
  if (::geteuid() != 0) {
    std::fprintf(stderr,
                 "ocx demo: the providers run jobs in real sandboxes (bubblewrap, cgroups, an "
                 "unprivileged uid of their own): run it as root (./scripts/demo.sh does).\n");
    return 2;
  }
  const auto started = Clock::now();
  std::string dir = options.data_dir;
  const bool temporary = dir.empty();
  if (temporary) {
    char pattern[] = "/tmp/ocx-demo-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) {
      std::perror("ocx demo: mkdtemp");
      return 1;
    }
    dir = pattern;
  } else {
    std::error_code error;
    std::filesystem::create_directories(dir, error);
    if (error) {
      std::fprintf(stderr, "ocx demo: cannot create '%s': %s\n", dir.c_str(),
                   error.message().c_str());
      return 2;
    }
  }
  ::chmod(dir.c_str(), 0711);  // Jobs' uid passes through to their directories.
  struct sigaction action {};
  action.sa_handler = OnSignal;
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);

  std::cout << "ocx demo: a whole compute market on this machine (data in " << dir << ")\n";
  Heading("1. The exchange");
  client::LocalExchangeOptions exchange_options;
  exchange_options.data_dir = dir + "/exchange";
  auto exchange = client::LocalExchange::Start(exchange_options);
  if (!exchange.ok()) {
    std::fprintf(stderr, "ocx demo: %s\n", std::string(exchange.status().message()).c_str());
    return 1;
  }
  const std::string url = (*exchange)->url();
  std::cout << "  ocx exchange is listening on " << url << " (pid " << (*exchange)->pid()
            << "; journal, snapshots and SQLite in " << exchange_options.data_dir << ")\n";
  auto fail = [&](const std::string& what, const absl::Status& status) {
    std::fprintf(stderr, "ocx demo: %s: %s\n", what.c_str(), std::string(status.message()).c_str());
    return 1;
  };
  auto anonymous = client::ExchangeClient::Connect(url);
  auto op = ClientWith(url, (*exchange)->operator_token());
  if (!anonymous.ok()) return fail("connecting", anonymous.status());
  if (!op.ok()) return fail("connecting", op.status());

  Heading("2. Accounts");
  struct Account {
    uint64_t id = 0;
    std::string token;
  };
  auto create = [&](const std::string& name, const char* role) -> absl::StatusOr<Account> {
    const Json body{{"name", name}, {"role", role}};
    auto created = (*anonymous)->Call("POST", "/v1/accounts", &body, {201});
    if (!created.ok()) return created.status();
    return Account{(*created)["account"]["id"].get<uint64_t>(),
                   (*created)["token"].get<std::string>()};
  };
  std::vector<Account> providers;
  for (const DemoProvider& p : kProviders) {
    auto account = create(p.account, "provider");
    if (!account.ok()) return fail("creating a provider", account.status());
    providers.push_back(*account);
    std::cout << "  provider " << p.account << " (account " << account->id << ")\n";
  }
  auto consumer_account = create(kConsumer, "consumer");
  if (!consumer_account.ok()) return fail("creating the consumer", consumer_account.status());
  const Json deposit{{"amount", kConsumerFunds}};
  if (auto funded = (*op)->Call(
          "POST", "/v1/accounts/" + std::to_string(consumer_account->id) + "/deposits", &deposit);
      !funded.ok()) {
    return fail("funding the consumer", funded.status());
  }
  std::cout << "  consumer " << kConsumer << " (account " << consumer_account->id
            << "), funded by the operator with " << kConsumerFunds << " credits\n";
  auto consumer = ClientWith(url, consumer_account->token);
  if (!consumer.ok()) return fail("connecting", consumer.status());

  Heading("3. Three providers start their agents");
  agent::DiscoveryOptions discovery;
  discovery.disk_dir = dir;
  auto facts = agent::Discover(discovery);
  if (!facts.ok()) return fail("discovering this machine", facts.status());
  const core::MachineSpec measured =
      agent::ToMachineSpec(*facts, agent::DefaultOwnerPolicy().share, core::ExchangeConfig::Default());
  std::vector<std::unique_ptr<sandbox::BubblewrapSandbox>> sandboxes;
  std::vector<std::unique_ptr<agent::Agent>> agents;
  auto stop_all = [&] {
    for (auto& agent : agents) agent->Stop();
    agents.clear();
  };
  for (size_t i = 0; i < std::size(kProviders); ++i) {
    const DemoProvider& p = kProviders[i];
    auto policy = agent::ParseOwnerPolicy(PolicyToml(p), std::string(p.machine) + ".toml");
    if (!policy.ok()) return fail("the demo's policy", policy.status());
    auto sandbox = sandbox::BubblewrapSandbox::Create({});
    if (!sandbox.ok()) return fail("the sandbox", sandbox.status());
    agent::AgentOptions agent_options;
    agent_options.exchange_url = url;
    agent_options.provider_token = providers[i].token;
    agent_options.data_dir = dir + "/" + p.machine;
    agent_options.policy = *policy;
    core::MachineSpec spec = measured;
    spec.capacity.clear();
    spec.capacity["cpu"] = p.slots;  // Its share of this machine, for the demo.
    agent_options.spec = spec;
    agent_options.sandbox = sandbox->get();
    const std::string name = p.machine;
    agent_options.log = [name](const std::string& line) {
      // One insertion per line, so lines from the agents' threads do not interleave.
      if (!g_agents_quiet.load()) std::cout << ("  [" + name + "] " + line + "\n") << std::flush;
    };
    auto agent = agent::Agent::Start(agent_options);
    if (!agent.ok()) {
      stop_all();
      return fail("starting " + name + "'s agent", agent.status());
    }
    (*agent)->RunInBackground();
    sandboxes.push_back(std::move(*sandbox));
    agents.push_back(std::move(*agent));
    std::cout << "  " << p.machine << ": region " << p.region << ", " << p.slots
              << (p.slots == 1 ? " slot" : " slots") << " at " << p.price
              << " credits per slot-hour (policy: " << p.tier << ")\n";
  }
  // Wait for the three asks.
  const auto offers_deadline = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < offers_deadline && !g_interrupted.load()) {
    auto book = (*anonymous)->Call("GET", "/v1/markets/cpu/book?depth=10");
    if (book.ok() && (*book)["asks"].size() >= std::size(kProviders)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  PrintBook(**anonymous);

  Heading("4. Discovery: which machines match a query?");
  {
    const std::string q = "region in [\"eu\", \"us\"] && cpu.cores >= 1";
    auto offers = (*anonymous)->Call("GET", "/v1/offers?q=" + UrlEncode(q) + "&sort=price");
    std::cout << "  ocx offers '" << q << "' --sort price\n";
    if (offers.ok()) {
      for (const Json& m : (*offers)["items"]) {
        std::cout << "    machine " << m["id"].get<uint64_t>() << "  "
                  << m["name"].get<std::string>() << "  region "
                  << m["attributes"].value("region", std::string("-")) << "  ask "
                  << (m["ask"].is_string() ? m["ask"].get<std::string>() : std::string("-"))
                  << "\n";
      }
    } else {
      std::cout << "    " << offers.status().message() << "\n";
    }
  }

  // The consumer's input.
  const std::string inputs_dir = dir + "/consumer";
  std::filesystem::create_directories(inputs_dir);
  std::ofstream(inputs_dir + "/words.txt")
      << "the quick brown fox jumps over the lazy dog the fox the dog a market of machines "
         "where the price is fair and the sandbox is strong the end\n";

  int job_number = 0;
  int64_t billed_micros = 0;
  bool all_succeeded = true;
  for (const DemoJob& job : DemoJobs(inputs_dir)) {
    if (g_interrupted.load()) break;
    Heading(std::to_string(5 + job_number++) + ". Job: " + job.title);
    JobRunOptions run;
    run.exchange_url = url;
    run.token = consumer_account->token;
    run.job = job.file;
    run.output_dir = dir + "/consumer/job-" + std::to_string(job_number);
    run.show_progress = false;
    run.waiting_report_interval_ms = 2000;
    run.poll_interval_ms = 500;
    auto report = RunJob(run, std::cout, &g_interrupted);
    if (!report.ok()) {
      std::cout << "  the job failed: " << report.status().message() << "\n";
      all_succeeded = false;
      continue;
    }
    PrintBill(*report, std::cout);
    billed_micros += base::ParseMicros(report->total).micros;
    all_succeeded = all_succeeded && report->all_succeeded;
    // Show what came back.
    std::error_code ignored;
    for (auto it = std::filesystem::recursive_directory_iterator(report->output_dir, ignored);
         it != std::filesystem::recursive_directory_iterator(); it.increment(ignored)) {
      if (!it->is_regular_file() || it->path().parent_path().filename() != "out") continue;
      std::ifstream in(it->path());
      std::string line;
      std::cout << "  output " << std::filesystem::relative(it->path(), report->output_dir).string()
                << ":\n";
      while (std::getline(in, line)) std::cout << "    " << line << "\n";
    }
  }

  g_agents_quiet.store(true);
  Heading(std::to_string(5 + job_number) + ". The market afterwards");
  PrintBook(**anonymous);
  if (auto trades = (*anonymous)->Call("GET", "/v1/markets/cpu/trades?limit=20"); trades.ok()) {
    std::cout << "  trades:";
    for (const Json& t : (*trades)["items"]) {
      std::cout << "  #" << t["id"].get<uint64_t>() << " " << t["quantity"].get<int64_t>() << "@"
                << t["price"].get<std::string>();
    }
    std::cout << "\n";
  }
  if (auto leases = (*consumer)->Call("GET", "/v1/leases"); leases.ok()) {
    std::cout << "  " << kConsumer << "'s leases:";
    for (const Json& l : (*leases)["items"]) {
      std::cout << "  #" << l["id"].get<uint64_t>() << " machine " << l["machine"].get<uint64_t>()
                << " " << l.value("end_reason", l["status"].get<std::string>()) << " "
                << l["billed_seconds"].get<int64_t>() << "s";
    }
    std::cout << "\n";
  }
  std::vector<uint64_t> provider_ids;
  std::cout << "  providers' earnings:";
  for (size_t i = 0; i < providers.size(); ++i) {
    provider_ids.push_back(providers[i].id);
    auto account = (*op)->Call("GET", "/v1/accounts/" + std::to_string(providers[i].id));
    std::cout << "  " << kProviders[i].account << " "
              << (account.ok() ? (*account)["account"]["balances"]["earnings"].get<std::string>()
                               : std::string("?"));
  }
  std::cout << "\n";

  Heading(std::to_string(6 + job_number) + ". Ledger check");
  const bool ledger_ok = CheckLedger(**op, **consumer, consumer_account->id, provider_ids,
                                     base::ParsedMicros{billed_micros});

  if (options.keep && !g_interrupted.load()) {
    // For scripts (the browser tests): where it runs and who may sign in. Mode 0600: tokens.
    const nlohmann::json running = {
        {"url", url},
        {"dashboard_url", url + "/"},
        {"consumer_name", kConsumer},
        {"consumer_account", consumer_account->id},
        {"consumer_token", consumer_account->token},
        {"operator_token", (*exchange)->operator_token()},
        {"provider_accounts", provider_ids},
        {"data_dir", dir},
    };
    const std::string running_file = dir + "/demo.json";
    if (absl::Status written = base::WriteFileAtomically(running_file, running.dump(2) + "\n", 0600);
        !written.ok()) {
      std::cerr << "ocx demo: cannot write " << running_file << ": " << written.message() << "\n";
    }
    Heading("Running on (--keep): Ctrl-C stops everything");
    std::cout << "  dashboard:    " << url << "/  (sign in with the consumer token below)\n"
              << "  API:          " << url << "/v1/markets\n"
              << "  OpenAPI:      " << url << "/openapi.json\n"
              << "  metrics:      " << url << "/metrics\n"
              << "  consumer token (" << kConsumer << "): " << consumer_account->token << "\n"
              << "  operator token: " << exchange_options.data_dir << "/operator.token\n"
              << "  for scripts:  " << running_file << "\n"
              << "  try: OCX_TOKEN=" << consumer_account->token << " ocx run --exchange " << url
              << " --max-price 0.07 -- echo hello\n"
              << std::flush;
    while (!g_interrupted.load()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }

  Heading("Stopping");
  stop_all();
  const int exchange_status = (*exchange)->Stop();
  std::cout << "  agents stopped; the exchange stopped "
            << (exchange_status == 0 ? "cleanly" : "with status " + std::to_string(exchange_status))
            << "\n";
  if (temporary && !options.keep) {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  const bool ok = all_succeeded && ledger_ok && exchange_status == 0 && !g_interrupted.load();
  std::printf("\nocx demo %s in %.1f s\n", ok ? "finished" : "FAILED", seconds);
  return ok ? 0 : 1;
}

}  // namespace

void RegisterDemo(CLI::App& app, Registry& registry) {
  auto options = std::make_shared<DemoOptions>();
  CLI::App* demo = app.add_subcommand(
      "demo", "Run a whole market on this machine: exchange, three providers, a consumer, jobs");
  demo->add_flag("--keep", options->keep,
                 "Keep the exchange and the agents running afterwards (Ctrl-C stops them)");
  demo->add_option("--data-dir", options->data_dir,
                   "Where the exchange, agents and outputs live (default: a temporary "
                   "directory, removed at the end)");
  demo->footer(
      "Runs as root: the providers' jobs run in real sandboxes.\n"
      "Examples:\n"
      "  sudo ocx demo\n"
      "  sudo ocx demo --keep        # then point ocx run / curl at the printed URL");
  registry.Add(demo, [options] { return RunDemo(*options); });
}

}  // namespace ocx::cli
