#include "src/agent/agent.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "src/agent/discovery.h"
#include "src/agent/task_runner.h"
#include "src/protocol/identity.h"
#include "src/protocol/task_spec.h"
#include "src/base/utf8.h"
#include "src/base/decimal.h"
#include "src/base/files.h"
#include "src/base/status.h"
#include "src/client/exchange_client.h"
#include "src/client/url.h"
#include "src/client/websocket_client.h"
#include "src/core/exchange.h"

namespace ocx::agent {
namespace {

using Json = nlohmann::json;

// After a task took a prepared sandbox, how long the next one waits before it is prepared:
// the job that just started gets the CPU first (a sandbox's set-up is a burst of about 10 ms
// of CPU, which on a 2-core machine would delay the job's own start).
constexpr int64_t kRewarmDelayMs = 50;
// After a failed Prepare(), the next try waits this long, doubling up to the maximum.
constexpr int64_t kWarmRetryMinMs = 1'000;
constexpr int64_t kWarmRetryMaxMs = 60'000;

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t UnixMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A whole file: the identity and registration files, and a job's output for its upload
// (the exchange bounds blobs at 64 MiB).
absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}


std::string ToHex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const char c : bytes) {
    out.push_back(kHex[static_cast<unsigned char>(c) >> 4]);
    out.push_back(kHex[static_cast<unsigned char>(c) & 15]);
  }
  return out;
}

std::optional<std::string> FromHex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int high = nibble(hex[i]), low = nibble(hex[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    out.push_back(static_cast<char>(high << 4 | low));
  }
  return out;
}

}  // namespace

struct Agent::LeaseState {
  core::LeaseId lease = 0;
  core::Quantity slots = 0;
  int32_t max_hours = 1;
  core::Timestamp start = 0;  // Exchange time (Unix microseconds).
  std::unique_ptr<sandbox::CancelToken> cancel;
  bool task_started = false;
  bool ended = false;  // The exchange ended it (or the agent did and the exchange agreed).
  int64_t kill_at_ms = 0;  // Reclaimed: the job's notice runs out then (steady clock).
  std::atomic<bool> thread_done{false};  // The task's thread has nothing left to do.
  std::thread thread;
  // From the finished job, for the usage reports.
  int64_t cpu_seconds = 0;
  int64_t peak_memory_mib = 0;
  // Live output waiting to be sent.
  std::mutex log_mu;
  std::string pending_log[2];
  int64_t last_flush_ms = 0;
};

Agent::Agent(AgentOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<Agent>> Agent::Start(AgentOptions options) {
  if (options.sandbox == nullptr) return absl::InvalidArgumentError("the agent needs a sandbox");
  if (options.provider_token.empty()) {
    return absl::InvalidArgumentError("the agent needs the provider account's API token");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir + "/jobs", ec);
  if (ec) return absl::PermissionDeniedError("cannot create " + options.data_dir + ": " + ec.message());
  ::chmod(options.data_dir.c_str(), 0711);  // The job's uid passes through to its directory.
  ::chmod((options.data_dir + "/jobs").c_str(), 0711);
  std::unique_ptr<Agent> agent(new Agent(std::move(options)));
  // Jobs (and sandboxes prepared for jobs) of a previous run that died with it: nothing of
  // them may stay on disk.
  for (const char* dir : {"/jobs", "/warm"}) {
    for (const auto& entry :
         std::filesystem::directory_iterator(agent->options_.data_dir + dir, ec)) {
      (void)sandbox::Wipe(entry.path().string());
    }
  }
  client::HttpClientOptions http_options;
  http_options.bearer_token = agent->options_.provider_token;
  auto http = client::ExchangeClient::Connect(agent->options_.exchange_url, http_options);
  if (!http.ok()) return http.status();
  agent->http_ = std::move(*http);
  OCX_RETURN_IF_ERROR(agent->LoadOrCreateIdentity());
  OCX_RETURN_IF_ERROR(agent->RegisterIfNeeded());
  agent->governor_ = std::make_unique<LoadGovernor>(agent->options_.policy.load);
  return agent;
}

Agent::~Agent() { Stop(); }

absl::Status Agent::LoadOrCreateIdentity() {
  const std::string path = options_.data_dir + "/machine.key";
  auto text = ReadWholeFile(path);
  if (text.ok()) {
    const Json key = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
    const auto secret = key.is_object() && key["secret_key"].is_string()
                            ? FromHex(key["secret_key"].get<std::string>())
                            : std::nullopt;
    if (!secret || secret->size() != 64 || !key["public_key"].is_string()) {
      return absl::DataLossError(path + " is not a machine key file");
    }
    secret_key_ = *secret;
    public_key_ = key["public_key"].get<std::string>();
    return absl::OkStatus();
  }
  const protocol::MachineKeyPair pair = protocol::NewMachineKeyPair();
  secret_key_ = pair.secret_key;
  public_key_ = pair.public_key_hex;
  Log("created the machine's Ed25519 identity in " + path);
  return base::WriteFileAtomically(
      path, Json{{"secret_key", ToHex(secret_key_)}, {"public_key", public_key_}}.dump() + "\n",
      0600);
}

absl::Status Agent::RegisterIfNeeded() {
  const std::string path = options_.data_dir + "/machine.json";
  if (auto text = ReadWholeFile(path); text.ok()) {
    const Json saved = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (!saved.is_discarded() && saved.value("exchange", "") == options_.exchange_url &&
        saved.value("public_key", "") == public_key_) {
      machine_ = saved.value("machine", uint64_t{0});
      capacity_ = saved.value("capacity", int64_t{0});
      if (machine_ != 0) return absl::OkStatus();
    }
  }
  core::MachineSpec spec;
  if (options_.spec) {
    spec = *options_.spec;
  } else {
    DiscoveryOptions discovery;
    discovery.disk_dir = options_.data_dir;
    auto facts = Discover(discovery);
    if (!facts.ok()) return facts.status();
    spec = ToMachineSpec(*facts, options_.policy.share, core::ExchangeConfig::Default());
  }
  if (!options_.policy.name.empty()) spec.name = options_.policy.name;
  if (spec.name.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    spec.name = host;
  }
  Json attributes = Json::object();
  for (const auto& [key, value] : spec.attributes) {
    attributes[key] = value.is_number ? Json::parse(base::FormatMicros(value.number_micros))
                                      : Json(value.text);
  }
  if (!options_.policy.region.empty()) attributes["region"] = options_.policy.region;
  for (const auto& [key, value] : options_.policy.labels) attributes[key] = value;
  Json capacity = Json::object();
  for (const auto& [market, slots] : spec.capacity) capacity[market] = slots;
  const Json body{{"name", spec.name},
                  {"public_key", public_key_},
                  {"attributes", attributes},
                  {"capacity", capacity}};
  auto registered = http_->Call("POST", "/v1/machines", &body, {201});
  if (!registered.ok()) return registered.status();
  machine_ = (*registered)["machine"]["id"].get<uint64_t>();
  const auto it = spec.capacity.find(options_.market);
  capacity_ = it == spec.capacity.end() ? 0 : it->second;
  Log("registered machine " + std::to_string(machine_) + " (" + spec.name + ", " +
      std::to_string(capacity_) + " " + options_.market + " slots)");
  return base::WriteFileAtomically(path,
                             Json{{"exchange", options_.exchange_url},
                                  {"public_key", public_key_},
                                  {"machine", machine_},
                                  {"capacity", capacity_}}
                                     .dump() +
                                 "\n",
                             0600);
}

void Agent::RunInBackground() {
  {
    std::lock_guard lock(mu_);
    status_.machine = machine_;
  }
  connection_thread_ = std::thread([this] { ConnectionLoop(); });
  if (options_.warm_sandboxes > 0) warmer_thread_ = std::thread([this] { WarmerLoop(); });
}

// The sandboxes are prepared on this thread, and a prepared sandbox dies with the thread that
// forked it (the launcher's parent-death signal follows the thread, not the process): so the
// thread lives until Stop(), which kills the jobs anyway.
void Agent::WarmerLoop() {
  int64_t retry_ms = kWarmRetryMinMs;
  uint64_t made = 0;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (warm_.size() >= static_cast<size_t>(options_.warm_sandboxes)) {
      warm_cv_.wait(lock);
      continue;
    }
    if (const int64_t wait = last_warm_take_ms_ + kRewarmDelayMs - NowMs(); wait > 0) {
      warm_cv_.wait_for(lock, std::chrono::milliseconds(wait));
      continue;
    }
    lock.unlock();
    absl::StatusOr<WarmStart> warm =
        PrepareWarmStart(*options_.sandbox, options_.data_dir + "/warm",
                         "warm-" + std::to_string(++made), capacity_ * sandbox::kSlotMemoryBytes);
    lock.lock();
    if (!warm.ok()) {
      // Tasks start afresh meanwhile; a sandbox that cannot prepare says so once per streak.
      if (retry_ms == kWarmRetryMinMs) {
        Log("cannot prepare a sandbox ahead (tasks start afresh): " +
            std::string(warm.status().message()));
      }
      warm_cv_.wait_for(lock, std::chrono::milliseconds(retry_ms), [this] { return stopping_; });
      retry_ms = std::min(retry_ms * 2, kWarmRetryMaxMs);
      continue;
    }
    retry_ms = kWarmRetryMinMs;
    warm_.push_back(*std::move(warm));
  }
}

std::optional<WarmStart> Agent::TakeWarmStart() {
  std::lock_guard lock(mu_);
  if (warm_.empty()) return std::nullopt;
  WarmStart warm = std::move(warm_.back());
  warm_.pop_back();
  last_warm_take_ms_ = NowMs();
  warm_cv_.notify_all();
  return warm;
}

void Agent::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !connection_thread_.joinable()) return;
    stopping_ = true;
    for (auto& [id, state] : leases_) {
      if (state->cancel) state->cancel->Cancel();
    }
  }
  stop_cv_.notify_all();
  warm_cv_.notify_all();
  if (connection_thread_.joinable()) connection_thread_.join();
  if (warmer_thread_.joinable()) warmer_thread_.join();
  std::vector<WarmStart> warm;
  {
    std::lock_guard lock(mu_);
    warm.swap(warm_);
  }
  for (WarmStart& unused : warm) {
    unused.prepared.reset();  // kills it
    (void)sandbox::Wipe(unused.dir);
  }
  std::map<core::LeaseId, std::shared_ptr<LeaseState>> leases;
  {
    std::lock_guard lock(mu_);
    leases = leases_;
  }
  for (auto& [id, state] : leases) {
    if (state->thread.joinable()) state->thread.join();
  }
  std::lock_guard lock(mu_);
  if (ws_) {
    (void)ws_->Close();
    ws_.reset();
  }
}

AgentStatus Agent::status() const {
  std::lock_guard lock(mu_);
  AgentStatus out = status_;
  out.active_leases = 0;
  for (const auto& [id, state] : leases_) out.active_leases += !state->ended;
  out.warm_sandboxes = warm_.size();
  return out;
}

void Agent::Log(const std::string& line) const {
  if (options_.log) options_.log(line);
}

int64_t Agent::NowMs() const { return SteadyMs(); }

void Agent::ConnectionLoop() {
  int64_t delay_ms = kReconnectDelayMinMs;
  std::mt19937_64 jitter(std::random_device{}());
  while (true) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
    }
    const int64_t began = NowMs();
    const absl::Status ended = Session();
    {
      std::lock_guard lock(mu_);
      status_.connected = false;
      ws_.reset();
      if (stopping_) break;
    }
    Log("connection to the exchange lost: " + ended.ToString());
    if (NowMs() - began > 60'000) delay_ms = kReconnectDelayMinMs;  // It had been working.
    const int64_t wait = delay_ms / 2 + static_cast<int64_t>(jitter() % (delay_ms / 2 + 1));
    std::unique_lock lock(mu_);
    stop_cv_.wait_for(lock, std::chrono::milliseconds(wait), [this] { return stopping_; });
    delay_ms = std::min(delay_ms * 2, kReconnectDelayMaxMs);
  }
  // Withdraw the offer on the way out, when the exchange can be reached.
  core::OrderId sell = 0;
  {
    std::lock_guard lock(mu_);
    sell = status_.sell_order;
    status_.sell_order = 0;
  }
  if (sell != 0) (void)http_->Call("DELETE", "/v1/orders/" + std::to_string(sell));
}

absl::Status Agent::Session() {
  auto endpoint = client::ParseUrl(options_.exchange_url);
  if (!endpoint.ok()) return endpoint.status();
  auto connected = client::WebSocketClient::Connect(*endpoint, "/v1/agent");
  if (!connected.ok()) return connected.status();
  std::shared_ptr<client::WebSocketClient> ws = std::move(*connected);
  auto challenge_text = ws->Receive(10'000);
  if (!challenge_text.ok()) return challenge_text.status();
  const Json challenge = Json::parse(*challenge_text, nullptr, /*allow_exceptions=*/false);
  if (challenge.is_discarded() || challenge.value("type", "") != "challenge") {
    return absl::UnavailableError("the exchange did not send a challenge");
  }
  const std::string nonce = challenge.value("nonce", "");
  OCX_RETURN_IF_ERROR(ws->Send(
      Json{{"type", "auth"},
           {"machine", machine_},
           {"signature", protocol::SignHex(secret_key_, protocol::AgentAuthMessage(machine_, nonce))}}
          .dump()));
  auto welcome_text = ws->Receive(10'000);
  if (!welcome_text.ok()) return welcome_text.status();
  const Json welcome = Json::parse(*welcome_text, nullptr, /*allow_exceptions=*/false);
  if (welcome.is_discarded() || welcome.value("type", "") != "welcome") {
    return absl::UnauthenticatedError("the exchange refused the machine's key: " + *welcome_text);
  }
  {
    std::lock_guard lock(mu_);
    ws_ = ws;
    status_.connected = true;
    ++status_.connections;
    results_in_flight_.clear();  // Unanswered on the last connection: send them again.
  }
  Log("connected to the exchange as machine " + std::to_string(machine_));
  // Leases the exchange still has for us (after a reconnect, or a restart of the agent).
  std::set<core::LeaseId> active;
  for (const Json& lease : welcome.value("leases", Json::array())) {
    active.insert(lease.value("lease", uint64_t{0}));
    TrackLease(lease);
    if (lease.contains("task")) StartTask(lease["lease"].get<uint64_t>(), lease["task"]);
  }
  {
    // Leases we run that the exchange no longer has ended while we were away.
    std::vector<core::LeaseId> gone;
    std::lock_guard lock(mu_);
    for (const auto& [id, state] : leases_) {
      if (!state->ended && !active.contains(id)) gone.push_back(id);
    }
    for (core::LeaseId id : gone) {
      leases_[id]->ended = true;
      if (leases_[id]->cancel) leases_[id]->cancel->Cancel();
    }
  }
  int64_t next_heartbeat = 0, next_usage = NowMs() + kUsageIntervalMs, next_market = 0;
  while (true) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return absl::OkStatus();
    }
    const int64_t now = NowMs();
    if (now >= next_heartbeat) {
      Send(Json{{"type", "heartbeat"}});
      std::lock_guard lock(mu_);
      ++status_.heartbeats_sent;
      next_heartbeat = now + kHeartbeatIntervalMs;
    }
    if (now >= next_usage) {
      SendUsageReports(now);
      next_usage = now + kUsageIntervalMs;
    }
    if (now >= next_market || market_dirty_.exchange(false)) {
      MaintainMarket(now);
      next_market = now + options_.market_interval_ms;
    }
    {
      // Notices that ran out; and leases that are over, with their task's thread done, are
      // forgotten (their threads joined), so a long-running agent holds only live ones.
      std::vector<std::shared_ptr<LeaseState>> finished;
      {
        std::lock_guard lock(mu_);
        for (auto it = leases_.begin(); it != leases_.end();) {
          LeaseState& state = *it->second;
          if (state.kill_at_ms != 0 && now >= state.kill_at_ms) {
            state.kill_at_ms = 0;
            if (state.cancel) state.cancel->Cancel();
          }
          if (state.ended && (!state.task_started || state.thread_done)) {
            finished.push_back(it->second);
            it = leases_.erase(it);
          } else {
            ++it;
          }
        }
      }
      for (const auto& state : finished) {
        if (state->thread.joinable()) state->thread.join();
      }
    }
    // Results not yet acknowledged, and buffered output.
    {
      std::vector<std::pair<core::LeaseId, Json>> results;
      std::vector<std::shared_ptr<LeaseState>> states;
      {
        std::lock_guard lock(mu_);
        for (const auto& [id, result] : pending_results_) {
          if (!results_in_flight_.contains(id)) results.emplace_back(id, result);
        }
        for (const auto& [id, state] : leases_) states.push_back(state);
      }
      for (const auto& state : states) {
        std::lock_guard log_lock(state->log_mu);
        for (int stream = 0; stream < 2; ++stream) {
          std::string& pending = state->pending_log[stream];
          while (!pending.empty()) {
            const size_t take = std::min(pending.size(), kLogChunkBytes);
            Send(Json{{"type", "task_log"},
                      {"lease", state->lease},
                      {"stream", stream == 0 ? "stdout" : "stderr"},
                      {"data", base::ToValidUtf8(std::string_view(pending).substr(0, take))}});
            pending.erase(0, take);
          }
        }
      }
      for (const auto& [lease, result] : results) {
        Send(Json{{"type", "task_result"},
                  {"id", "result-" + std::to_string(lease)},
                  {"lease", lease},
                  {"result", result}});
        // Kept until the exchange answers (ack or refusal): a connection lost before that
        // sends it again on the next one.
        std::lock_guard lock(mu_);
        results_in_flight_.insert(lease);
      }
    }
    const int64_t wait = std::max<int64_t>(
        1, std::min({next_heartbeat, next_usage, next_market, NowMs() + kLogFlushMs}) - NowMs());
    auto text = ws->Receive(wait);
    if (!text.ok()) {
      if (absl::IsDeadlineExceeded(text.status())) continue;
      return text.status();
    }
    const Json message = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (!message.is_discarded() && message.is_object()) HandleMessage(message);
  }
}

void Agent::Send(const Json& message) {
  std::shared_ptr<client::WebSocketClient> ws;
  {
    std::lock_guard lock(mu_);
    ws = ws_;
  }
  if (ws) (void)ws->Send(message.dump());
}

void Agent::TrackLease(const Json& lease) {
  const core::LeaseId id = lease.value("lease", uint64_t{0});
  if (id == 0) return;
  std::lock_guard lock(mu_);
  if (leases_.contains(id)) return;  // A lease in the welcome and in lease_started.
  auto state = std::make_shared<LeaseState>();
  state->lease = id;
  state->slots = lease.value("slots", int64_t{1});
  state->max_hours = lease.value("max_hours", 1);
  state->start = lease.value("start", int64_t{0});
  auto cancel = sandbox::CancelToken::Create();
  if (cancel.ok()) state->cancel = std::move(*cancel);
  leases_[id] = state;
  Log("lease " + std::to_string(id) + " started: " + std::to_string(state->slots) + " slots");
}

void Agent::HandleMessage(const Json& message) {
  const std::string type = message.value("type", "");
  if (type == "lease_started") {
    TrackLease(message);
  } else if (type == "task") {
    StartTask(message.value("lease", uint64_t{0}), message.value("spec", Json()));
  } else if (type == "lease_ended") {
    EndedByExchange(message.value("lease", uint64_t{0}), message.value("reason", ""));
  } else if (type == "ack" || type == "error") {
    const Json id = message.value("id", Json());
    if (id.is_string() && id.get<std::string>().starts_with("result-")) {
      // Answered: accepted, or refused for good (the task's grace ran out, say).
      const core::LeaseId lease = std::stoull(id.get<std::string>().substr(7));
      std::lock_guard lock(mu_);
      pending_results_.erase(lease);
      results_in_flight_.erase(lease);
    }
    if (type == "error") Log("the exchange refused a message: " + message.dump());
  }
}

void Agent::StartTask(core::LeaseId lease, const Json& spec_json) {
  std::shared_ptr<LeaseState> state;
  {
    std::lock_guard lock(mu_);
    const auto it = leases_.find(lease);
    if (it == leases_.end() || it->second->task_started || it->second->ended) return;
    state = it->second;
    state->task_started = true;
    ++status_.tasks_started;
  }
  // The task spec travels with the thread; a bad one is reported as an error result.
  state->thread = std::thread([this, state, spec_text = spec_json.dump()] {
    const auto spec = protocol::ParseTaskSpec(spec_text);
    Json result;
    if (!spec.ok()) {
      result = Json{{"status", "error"},
                    {"exit_code", -1},
                    {"message", std::string(spec.status().message())}};
    } else {
      TaskRunOptions run;
      run.work_root = options_.data_dir + "/jobs";
      run.slots = static_cast<int>(state->slots);
      run.network_allowed = options_.policy.network;
      run.cancel = state->cancel.get();
      run.on_started = [this, lease = state->lease] {
        if (options_.on_job_started) options_.on_job_started(lease);
      };
      run.on_log = [this, state, first = true](std::string_view stream,
                                               std::string_view chunk) mutable {
        if (first && options_.on_job_first_output) options_.on_job_first_output(state->lease);
        first = false;
        std::lock_guard lock(state->log_mu);
        std::string& pending = state->pending_log[stream == "stdout" ? 0 : 1];
        // Bounded: past 1 MiB waiting, live output is dropped (the whole stream still comes
        // back as a blob in the result).
        if (pending.size() < (size_t{1} << 20)) pending.append(chunk);
      };
      // Blobs go through a connection of this thread's own (the HTTP client is not shared).
      client::HttpClientOptions http_options;
      http_options.bearer_token = options_.provider_token;
      auto http = client::ExchangeClient::Connect(options_.exchange_url, http_options);
      TaskBlobs blobs;
      blobs.fetch = [&http](const std::string& sha256, const std::string& dest) -> absl::Status {
        if (!http.ok()) return http.status();
        auto response = (*http)->http().Get("/v1/blobs/" + sha256);
        if (!response.ok()) return response.status();
        if (response->status != 200) {
          return absl::NotFoundError("blob " + sha256 + ": HTTP " + std::to_string(response->status));
        }
        std::ofstream out(dest, std::ios::binary | std::ios::trunc);
        out.write(response->body.data(), static_cast<std::streamsize>(response->body.size()));
        return out.good() ? absl::OkStatus() : absl::InternalError("cannot write " + dest);
      };
      blobs.upload = [&http](const std::string& path) -> absl::StatusOr<std::string> {
        if (!http.ok()) return http.status();
        auto bytes = ReadWholeFile(path);
        if (!bytes.ok()) return bytes.status();
        auto response = (*http)->http().Request("POST", "/v1/blobs", *bytes, {},
                                                 "application/octet-stream");
        if (!response.ok()) return response.status();
        const Json body = Json::parse(response->body, nullptr, /*allow_exceptions=*/false);
        if (response->status / 100 != 2 || body.is_discarded() || !body.contains("sha256")) {
          return absl::UnavailableError("blob upload: HTTP " + std::to_string(response->status));
        }
        return body["sha256"].get<std::string>();
      };
      std::optional<WarmStart> warm;
      if (!spec->network) warm = TakeWarmStart();
      result = RunTask(*options_.sandbox, state->lease, *spec, run, blobs,
                       warm.has_value() ? &*warm : nullptr);
      if (warm.has_value() && warm->used) {
        std::lock_guard lock(mu_);
        ++status_.tasks_prewarmed;
      }
    }
    {
      std::lock_guard lock(mu_);
      state->cpu_seconds = result.value("cpu_ms", int64_t{0}) / 1000;
      state->peak_memory_mib = result.value("peak_memory_mib", int64_t{0});
      pending_results_[state->lease] = result;
      ++status_.tasks_finished;
    }
    // Give the connection thread a moment to flush the output before the result and the
    // end of the lease (they travel on the same connection, in order).
    std::this_thread::sleep_for(std::chrono::milliseconds(2 * kLogFlushMs));
    bool ended = false;
    {
      std::lock_guard lock(mu_);
      // Stopping: the agent says nothing more; the exchange ends the lease when the machine
      // goes quiet, billing up to the last report.
      ended = state->ended || stopping_;
    }
    if (!ended) {
      // A final usage report, then the lease ends: billing stops now.
      SendUsageReports(NowMs());
      std::this_thread::sleep_for(std::chrono::milliseconds(kLogFlushMs));
      Send(Json{{"type", "end_lease"}, {"lease", state->lease}, {"reason", "finished"}});
    }
    state->thread_done = true;
  });
}

void Agent::EndedByExchange(core::LeaseId lease, const std::string& reason) {
  std::lock_guard lock(mu_);
  const auto it = leases_.find(lease);
  if (it == leases_.end()) return;
  it->second->ended = true;
  market_dirty_ = true;
  // Billing stopped at the end. A reclaimed spot lease's job gets its notice (RULEBOOK 4)
  // and is killed when it runs out; released or expired, the job stops now.
  if (reason == "reclaimed" && it->second->task_started) {
    it->second->kill_at_ms = NowMs() + options_.reclaim_notice_ms;
  } else if (it->second->cancel) {
    it->second->cancel->Cancel();
  }
  Log("lease " + std::to_string(lease) + " ended (" + reason + ")");
}

void Agent::SendUsageReports(int64_t) {
  std::vector<std::shared_ptr<LeaseState>> states;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, state] : leases_) {
      if (!state->ended) states.push_back(state);
    }
  }
  const int64_t now_us = UnixMicros();
  const core::MarketConfig* market = nullptr;
  static const core::ExchangeConfig kConfig = core::ExchangeConfig::Default();
  for (const auto& m : kConfig.markets) {
    if (m.name == options_.market) market = &m;
  }
  for (const auto& state : states) {
    core::ReportUsage usage;
    usage.machine = machine_;
    usage.lease = state->lease;
    usage.wall_seconds = std::clamp<int64_t>((now_us - state->start) / 1'000'000, 0,
                                             int64_t{state->max_hours} * 3600);
    {
      std::lock_guard lock(mu_);
      const int64_t vcpus = market ? market->slot.vcpus : 1;
      const int64_t mem = market ? market->slot.mem_mib : 2048;
      usage.cpu_seconds = std::min(state->cpu_seconds, usage.wall_seconds * state->slots * vcpus);
      usage.peak_memory_mib = std::min(state->peak_memory_mib, state->slots * mem);
    }
    Send(Json{{"type", "usage"},
              {"lease", usage.lease},
              {"wall_seconds", usage.wall_seconds},
              {"cpu_seconds", usage.cpu_seconds},
              {"peak_memory_mib", usage.peak_memory_mib},
              {"gpu_seconds", usage.gpu_seconds},
              {"signature", protocol::SignHex(secret_key_, protocol::UsageMessage(machine_, protocol::UsageFigures{usage.lease, usage.wall_seconds, usage.cpu_seconds, usage.peak_memory_mib, usage.gpu_seconds}))}});
    std::lock_guard lock(mu_);
    ++status_.usage_reports_sent;
  }
}

namespace {
// The exchange answered that the order is not open (filled, cancelled, expired).
bool OrderIsGone(const absl::Status& status) {
  const std::optional<client::ApiError> error = client::GetApiError(status);
  return error && error->code == "unknown_order";
}
}  // namespace

void Agent::MaintainMarket(int64_t now_ms) {
  // The owner's own load, from /proc/stat (what our jobs use is counted as the owner's here:
  // a known overestimate, documented, that errs on the owner's side).
  bool paused = false;
  if (auto sample = ReadCpuSample(); sample.ok()) {
    if (last_cpu_) {
      if (auto busy = OwnerBusyFraction(*last_cpu_, *sample, 0, ::sysconf(_SC_CLK_TCK))) {
        paused = governor_->Observe(now_ms, *busy);
      } else {
        paused = governor_->paused();
      }
    }
    last_cpu_ = *sample;
  }
  const int64_t now_s = UnixMicros() / 1'000'000;
  const bool available = IsAvailable(options_.policy, now_s) && !paused &&
                         OffersMarket(options_.policy, options_.market);
  core::Quantity leased = 0;
  core::OrderId sell = 0;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, state] : leases_) {
      if (!state->ended) leased += state->slots;
    }
    sell = status_.sell_order;
  }
  // What the exchange still has open of our sell (partly filled, cancelled when offline).
  core::Quantity open = 0;
  if (sell != 0) {
    auto order = http_->Call("GET", "/v1/orders/" + std::to_string(sell));
    if (order.ok() && (*order)["order"].value("status", "") == "open") {
      open = (*order)["order"].value("remaining", int64_t{0});
    } else if (order.ok() || client::GetApiError(order.status())) {
      sell = 0;
    } else {
      return;  // The exchange is unreachable; try again later.
    }
  }
  const core::Quantity free = std::max<core::Quantity>(0, capacity_ - leased);
  // The market's tick. A spot_margin rule asks its fallback price for now: the exchange does
  // not publish a spot index yet, and the last trade is no substitute (our own sales would
  // move it, and the ask with it, by the margin at every trade).
  const std::optional<int64_t> spot;
  int64_t tick = 100;
  if (auto markets = http_->Call("GET", "/v1/markets"); markets.ok()) {
    for (const Json& market : (*markets).value("items", Json::array())) {
      if (market.value("name", "") != options_.market || !market.contains("tick") ||
          !market["tick"].is_string()) {
        continue;
      }
      const base::ParsedMicros parsed = base::ParseMicros(market["tick"].get<std::string>());
      if (parsed.ok() && parsed.micros > 0) tick = parsed.micros;
    }
  }
  const auto ask = AskPriceMicros(PricingFor(options_.policy, options_.market), spot, tick);
  const core::Quantity want = available && ask ? free : 0;
  if (open == want && (sell != 0 || want == 0) && (want == 0 || offered_price_ == *ask)) {
    std::lock_guard lock(mu_);
    status_.sell_order = sell;
    status_.offered_slots = open;
    return;
  }
  // A sell still open is changed in place (one command, PATCH): cancelling it and placing
  // another would leave the book without our ask between the two, and a buyer then finds
  // nothing. The rulebook's replace keeps the order's id; a larger quantity or a new price
  // only loses its time priority.
  auto keep_offer = [&] {  // Leaves the open sell as it is, to be looked at next time.
    std::lock_guard lock(mu_);
    status_.sell_order = sell;
    status_.offered_slots = open;
  };
  if (sell != 0 && want > 0) {
    const Json change{{"price", base::FormatMicros(*ask)}, {"quantity", want}};
    auto answer = http_->Call("PATCH", "/v1/orders/" + std::to_string(sell), &change, {200});
    if (answer.ok() && (*answer).value("status", "") == "replaced") {
      offered_price_ = *ask;
      Log("offering " + std::to_string(want) + " slots at " + base::FormatMicros(*ask) +
          " (order " + std::to_string(sell) + " changed)");
    } else if (answer.ok() || OrderIsGone(answer.status())) {
      sell = 0;  // It filled or ended since we looked: a new one is placed below.
    } else {
      // Unreachable, busy, or refused for now (say, a lease we have not heard of yet still
      // holds a slot): the ask on the book stays, rather than none at all.
      if (client::GetApiError(answer.status())) {
        Log("could not change the offer: " + answer.status().ToString());
      }
      return keep_offer();
    }
  } else if (sell != 0) {  // Nothing to offer now: withdraw it.
    auto cancelled = http_->Call("DELETE", "/v1/orders/" + std::to_string(sell));
    if (!cancelled.ok() && !OrderIsGone(cancelled.status())) return keep_offer();
    sell = 0;
  }
  if (sell == 0 && want > 0) {  // None open (or it just went): a new one.
    const Json body{{"market", options_.market},
                    {"side", "sell"},
                    {"price", base::FormatMicros(*ask)},
                    {"quantity", want},
                    {"machine", machine_}};
    auto placed = http_->Call("POST", "/v1/orders", &body, {201});
    if (placed.ok()) {
      sell = (*placed)["order"]["id"].get<uint64_t>();
      offered_price_ = *ask;
      Log("offering " + std::to_string(want) + " slots at " + base::FormatMicros(*ask));
    } else {
      Log("could not offer capacity: " + placed.status().ToString());
    }
  }
  // Paused for the owner: running leases are reclaimed when the policy says so.
  if (paused && options_.policy.load.on_pause == PauseAction::kReclaim) {
    std::vector<core::LeaseId> running;
    {
      std::lock_guard lock(mu_);
      for (const auto& [id, state] : leases_) {
        if (!state->ended) running.push_back(id);
      }
    }
    for (core::LeaseId id : running) {
      Send(Json{{"type", "end_lease"}, {"lease", id}, {"reason", "reclaimed"}});
    }
  }
  std::lock_guard lock(mu_);
  status_.sell_order = sell;
  status_.offered_slots = sell != 0 ? want : 0;
}

}  // namespace ocx::agent
