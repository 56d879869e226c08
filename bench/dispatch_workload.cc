#include "bench/dispatch_workload.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "nlohmann/json.hpp"
#include "src/agent/agent.h"
#include "src/agent/policy.h"
#include "src/base/clock.h"
#include "src/client/exchange_client.h"
#include "src/client/local_exchange.h"
#include "src/sandbox/bubblewrap_sandbox.h"
#include "src/server/exchange_server.h"

namespace ocx::bench {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t index =
      std::min(values.size() - 1, static_cast<size_t>(p * static_cast<double>(values.size())));
  return values[index];
}

}  // namespace

absl::StatusOr<DispatchBenchResult> RunDispatchBench(const DispatchBenchOptions& options) {
  if (::geteuid() != 0) {
    return absl::FailedPreconditionError(
        "the agent's sandbox runs jobs under a uid of their own with cgroups: run as root");
  }
  if (options.leases < 1 || options.slots < 1) {
    return absl::InvalidArgumentError("--leases and --slots must be at least 1");
  }
  ::chmod(options.data_dir.c_str(), 0711);  // The job's uid passes through to its directory.
  // The exchange runs in a process of its own (`ocx exchange`, this very binary), as it does
  // in production: the agent's process stays small, and the sandbox forks from it.
  client::LocalExchangeOptions exchange_options;
  exchange_options.data_dir = options.data_dir + "/exchange";
  auto exchange = client::LocalExchange::Start(exchange_options);
  if (!exchange.ok()) return exchange.status();
  const std::string url = (*exchange)->url();
  const std::string operator_token = (*exchange)->operator_token();

  auto anonymous = client::ExchangeClient::Connect(url);
  if (!anonymous.ok()) return anonymous.status();
  auto make_account = [&](const char* name, const char* role) -> absl::StatusOr<Json> {
    const Json body{{"name", name}, {"role", role}};
    return (*anonymous)->Call("POST", "/v1/accounts", &body, {201});
  };
  auto buyer_account = make_account("dispatch-buyer", "consumer");
  if (!buyer_account.ok()) return buyer_account.status();
  auto seller_account = make_account("dispatch-seller", "provider");
  if (!seller_account.ok()) return seller_account.status();
  client::HttpClientOptions operator_options;
  operator_options.bearer_token = operator_token;
  auto op = client::ExchangeClient::Connect(url, operator_options);
  if (!op.ok()) return op.status();
  const Json deposit{{"amount", "100000"}};
  const std::string buyer_id = std::to_string((*buyer_account)["account"]["id"].get<uint64_t>());
  if (auto funded = (*op)->Call("POST", "/v1/accounts/" + buyer_id + "/deposits", &deposit);
      !funded.ok()) {
    return funded.status();
  }
  client::HttpClientOptions buyer_options;
  buyer_options.bearer_token = (*buyer_account)["token"].get<std::string>();
  auto buyer = client::ExchangeClient::Connect(url, buyer_options);
  if (!buyer.ok()) return buyer.status();

  auto sandbox = sandbox::BubblewrapSandbox::Create({});
  if (!sandbox.ok()) return sandbox.status();
  std::mutex mu;
  std::condition_variable started_cv;
  std::map<core::LeaseId, Clock::time_point> started;  // Guarded by mu.
  agent::AgentOptions agent_options;
  agent_options.exchange_url = url;
  agent_options.provider_token = (*seller_account)["token"].get<std::string>();
  agent_options.data_dir = options.data_dir + "/agent";
  agent_options.policy = agent::DefaultOwnerPolicy();
  core::MachineSpec spec;
  spec.name = "dispatch-bench";
  spec.capacity["cpu"] = options.slots;
  agent_options.spec = spec;
  agent_options.sandbox = sandbox->get();
  agent_options.warm_sandboxes = options.warm_sandboxes;
  std::map<core::LeaseId, Clock::time_point> launching;  // Guarded by mu.
  agent_options.on_job_started = [&](core::LeaseId lease) {
    std::lock_guard lock(mu);
    launching[lease] = Clock::now();
  };
  agent_options.on_job_first_output = [&](core::LeaseId lease) {
    std::lock_guard lock(mu);
    started[lease] = Clock::now();
    started_cv.notify_all();
  };
  auto agent = agent::Agent::Start(agent_options);
  if (!agent.ok()) return agent.status();
  (*agent)->RunInBackground();
  // An agent that has been running a while has its sandboxes prepared: so has this one
  // before the first lease (later ones find theirs refilled, or not, on their own).
  const auto ready_by = Clock::now() + std::chrono::seconds(10);
  while ((*agent)->status().warm_sandboxes < static_cast<size_t>(options.warm_sandboxes) &&
         Clock::now() < ready_by) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }

  DispatchBenchResult result;
  std::vector<double> latencies, task_posts, to_launch;
  const Json buy{{"market", "cpu"}, {"side", "buy"}, {"price", "0.05"},
                 {"quantity", 1},   {"tif", "ioc"},  {"max_hours", 1}};
  const Json task{{"command", {"echo", "running"}}};
  const auto began = Clock::now();
  const auto give_up = began + std::chrono::seconds(60 + options.leases);
  while (static_cast<int>(latencies.size()) < options.leases) {
    if (Clock::now() > give_up) return absl::DeadlineExceededError("the leases took too long");
    // Each lease starts on an idle agent: wait (reading, which journals nothing) until the
    // agent offers capacity again after the previous lease ended.
    auto book = (*buyer)->Call("GET", "/v1/markets/cpu/book?depth=1");
    if (!book.ok()) return book.status();
    if ((*book)["asks"].empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    const auto trade = Clock::now();
    auto bought = (*buyer)->Call("POST", "/v1/orders", &buy, {201});
    if (!bought.ok()) return bought.status();
    if ((*bought)["fills"].empty()) {  // Nothing offered right now: the agent re-offers soon.
      ++result.retries;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      continue;
    }
    const core::LeaseId lease = (*bought)["fills"][0]["lease"].get<uint64_t>();
    const auto before_post = Clock::now();
    auto assigned =
        (*buyer)->Call("POST", "/v1/leases/" + std::to_string(lease) + "/task", &task, {201});
    if (!assigned.ok()) return assigned.status();
    task_posts.push_back(Ms(Clock::now() - before_post));
    std::unique_lock lock(mu);
    if (!started_cv.wait_for(lock, std::chrono::seconds(30),
                             [&] { return started.contains(lease); })) {
      return absl::DeadlineExceededError("lease " + std::to_string(lease) + "'s job never started");
    }
    latencies.push_back(Ms(started[lease] - trade));
    to_launch.push_back(Ms(launching[lease] - trade));
    lock.unlock();
    // The job ends, the agent reports and ends the lease (and offers the slot again).
    while (true) {
      auto got = (*buyer)->Call("GET", "/v1/leases/" + std::to_string(lease));
      if (!got.ok()) return got.status();
      if ((*got)["lease"].value("status", "") == "ended") break;
      if (Clock::now() > give_up) return absl::DeadlineExceededError("a lease never ended");
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - began).count();
  result.prewarmed = static_cast<int>((*agent)->status().tasks_prewarmed);
  (*agent)->Stop();
  result.leases = static_cast<int>(latencies.size());
  result.p50_ms = Percentile(latencies, 0.50);
  result.p90_ms = Percentile(latencies, 0.90);
  result.p99_ms = Percentile(latencies, 0.99);
  result.max_ms = *std::max_element(latencies.begin(), latencies.end());
  result.task_post_p50_ms = Percentile(task_posts, 0.50);
  result.launch_p50_ms = Percentile(to_launch, 0.50);
  result.launch_p99_ms = Percentile(to_launch, 0.99);
  return result;
}

}  // namespace ocx::bench
