#include "src/agent/agent.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>
#include <set>

#include "absl/strings/numbers.h"
#include "src/agent/discovery.h"
#include "src/agent/task_runner.h"
#include "src/base/decimal.h"
#include "src/base/errno_status.h"
#include "src/base/files.h"
#include "src/base/hex.h"
#include "src/base/json.h"
#include "src/base/status.h"
#include "src/base/unique_fd.h"
#include "src/base/utf8.h"
#include "src/client/exchange_client.h"
#include "src/client/json_fields.h"
#include "src/client/url.h"
#include "src/client/websocket_client.h"
#include "src/core/exchange.h"
#include "src/protocol/identity.h"
#include "src/protocol/task_spec.h"

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

// Bound on the agent's own small files (machine.key, machine.json).
constexpr size_t kAgentFileBytesMax = 64 * 1024;
// How much of a message from the exchange a log line quotes.
constexpr size_t kLoggedMessageBytesMax = 200;
// Bound on a lease's max_hours as the agent reads it (the exchange's own is a month).
constexpr int64_t kLeaseHoursMax = int64_t{24} * 366;

using client::ArrayField;
using client::Int64Field;
using client::ObjectField;
using client::StringField;
using client::Uint64Field;

// A message or answer from the exchange, cut for a log line.
std::string Excerpt(std::string_view text) {
  std::string out = base::ToValidUtf8(text.substr(0, kLoggedMessageBytesMax));
  if (text.size() > kLoggedMessageBytesMax) out += "...";
  return out;
}
std::string ExcerptJson(const Json& value) { return Excerpt(base::DumpJson(value)); }

// `*array`, or an empty array when it is null: for a loop over a list that may be absent.
const Json& ElementsOf(const Json* array) {
  static const Json kNone = Json::array();
  return array != nullptr ? *array : kNone;
}

// Writes `bytes` to `path`, a new file (0600) that must not exist yet.
absl::Status WriteNewFile(const std::string& path, std::string_view bytes) {
  base::UniqueFd fd(
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) return base::ErrnoStatus(errno, "create", path);
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd.get(), bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return base::ErrnoStatus(errno, "write", path);
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// The task runner's blobs over the exchange's /v1/blobs, through `http` (a connection of the
// task's thread, which must outlive the functions).
TaskBlobs ExchangeBlobs(const absl::StatusOr<std::unique_ptr<client::ExchangeClient>>& http,
                        uint64_t blob_bytes_max) {
  TaskBlobs blobs;
  blobs.blob_bytes_max = blob_bytes_max;
  blobs.fetch = [&http](const std::string& sha256, const std::string& dest) -> absl::Status {
    if (!http.ok()) return http.status();
    OCX_ASSIGN_OR_RETURN(client::HttpResponse response, (*http)->http().Get("/v1/blobs/" + sha256));
    if (response.status != 200) {
      return client::ApiErrorToStatus(client::ParseApiError(response.status, response.body));
    }
    // The runner checks the size and the digest of what was written.
    return WriteNewFile(dest, response.body);
  };
  blobs.upload = [&http](int fd, uint64_t size) -> absl::StatusOr<std::string> {
    if (!http.ok()) return http.status();
    // Hashed first, from the same descriptor; PUT names the digest and the exchange checks
    // the bytes it receives against it, so the blob it keeps is what was hashed here.
    OCX_ASSIGN_OR_RETURN(const std::string sha256, client::Sha256OfUploadBody(fd, size));
    OCX_ASSIGN_OR_RETURN(client::HttpResponse response,
                         (*http)->http().Upload("PUT", "/v1/blobs/" + sha256, fd, size));
    if (response.status == 413) {
      // Over the exchange's blob limit or the account's blob quota: the runner leaves this
      // blob out of the result and says why (TaskBlobs::upload).
      const client::ApiError error = client::ParseApiError(response.status, response.body);
      return absl::ResourceExhaustedError(error.code + ": " + error.message + " (HTTP 413)");
    }
    if (response.status / 100 != 2) {
      return client::ApiErrorToStatus(client::ParseApiError(response.status, response.body));
    }
    const std::optional<Json> body = client::ParseExchangeJson(response.body);
    if (!body || StringField(*body, "sha256") != sha256) {
      return absl::UnavailableError(
          "the exchange's answer to a blob upload does not name the blob: " +
          Excerpt(response.body));
    }
    return sha256;
  };
  return blobs;
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
  if (options.blob_bytes_max == 0) {
    return absl::InvalidArgumentError("the agent's blob_bytes_max must be positive");
  }
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
  absl::StatusOr<std::string> text = base::ReadFileBounded(path, kAgentFileBytesMax);
  if (text.ok()) {
    const std::optional<Json> key = client::ParseExchangeJson(*text);
    const std::optional<std::string> secret_hex =
        key ? StringField(*key, "secret_key") : std::nullopt;
    const std::optional<std::string> public_hex =
        key ? StringField(*key, "public_key") : std::nullopt;
    std::string secret;
    if (!secret_hex || !base::HexDecode(*secret_hex, &secret) || secret.size() != 64 ||
        !public_hex) {
      return absl::DataLossError(path + " is not a machine key file");
    }
    secret_key_ = std::move(secret);
    public_key_ = *public_hex;
    return absl::OkStatus();
  }
  // Only a missing key is made anew: one that cannot be read must not be replaced.
  if (!absl::IsNotFound(text.status())) return text.status();
  const protocol::MachineKeyPair pair = protocol::NewMachineKeyPair();
  secret_key_ = pair.secret_key;
  public_key_ = pair.public_key_hex;
  Log("created the machine's Ed25519 identity in " + path);
  return base::WriteFileAtomically(path,
                                   base::DumpJson(Json{{"secret_key", base::HexEncode(secret_key_)},
                                                       {"public_key", public_key_}}) +
                                       "\n",
                                   0600);
}

absl::Status Agent::RegisterIfNeeded() {
  const std::string path = options_.data_dir + "/machine.json";
  if (auto text = base::ReadFileBounded(path, kAgentFileBytesMax); text.ok()) {
    // Anything else (another exchange, another key, a damaged file) registers afresh.
    const std::optional<Json> saved = client::ParseExchangeJson(*text);
    if (saved && StringField(*saved, "exchange") == options_.exchange_url &&
        StringField(*saved, "public_key") == public_key_) {
      machine_ = Uint64Field(*saved, "machine").value_or(0);
      capacity_ = std::max<int64_t>(0, Int64Field(*saved, "capacity").value_or(0));
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
  const Json* machine = ObjectField(*registered, "machine");
  machine_ = machine != nullptr ? Uint64Field(*machine, "id").value_or(0) : 0;
  if (machine_ == 0) {
    return absl::InternalError("POST /v1/machines answered without a machine id: " +
                               ExcerptJson(*registered));
  }
  const auto it = spec.capacity.find(options_.market);
  capacity_ = it == spec.capacity.end() ? 0 : it->second;
  Log("registered machine " + std::to_string(machine_) + " (" + spec.name + ", " +
      std::to_string(capacity_) + " " + options_.market + " slots)");
  return base::WriteFileAtomically(path,
                                   base::DumpJson(Json{{"exchange", options_.exchange_url},
                                                       {"public_key", public_key_},
                                                       {"machine", machine_},
                                                       {"capacity", capacity_}}) +
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
  // Everything the exchange sends is read with its types checked (json_fields.h): a buggy or
  // compromised exchange gets its message ignored or the connection dropped, never a crash.
  const std::optional<Json> challenge = client::ParseExchangeJson(*challenge_text);
  const std::optional<std::string> nonce =
      challenge ? StringField(*challenge, "nonce") : std::nullopt;
  if (!challenge || StringField(*challenge, "type") != "challenge" || !nonce) {
    return absl::UnavailableError("the exchange did not send a challenge: " +
                                  Excerpt(*challenge_text));
  }
  OCX_RETURN_IF_ERROR(ws->Send(Json{
      {"type", "auth"},
      {"machine", machine_},
      {"signature", protocol::SignHex(secret_key_, protocol::AgentAuthMessage(machine_, *nonce))}}
                                   .dump()));
  auto welcome_text = ws->Receive(10'000);
  if (!welcome_text.ok()) return welcome_text.status();
  const std::optional<Json> welcome = client::ParseExchangeJson(*welcome_text);
  if (!welcome || StringField(*welcome, "type") != "welcome") {
    return absl::UnauthenticatedError("the exchange refused the machine's key: " +
                                      Excerpt(*welcome_text));
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
  const Json* leases = ArrayField(*welcome, "leases");
  if (leases == nullptr && client::FindField(*welcome, "leases") != nullptr) {
    Log("ignored the welcome's leases, which are not a list: " + ExcerptJson(*welcome));
  }
  for (const Json& lease : ElementsOf(leases)) {
    const std::optional<core::LeaseId> id = Uint64Field(lease, "lease");
    if (!id || *id == 0 || !TrackLease(lease)) {
      Log("ignored a lease in the welcome: " + ExcerptJson(lease));
      continue;
    }
    active.insert(*id);
    if (const Json* task = client::FindField(lease, "task")) {
      if (task->is_object()) {
        StartTask(*id, *task);
      } else {
        Log("ignored a lease's task that is not an object: " + ExcerptJson(lease));
      }
    }
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
    const std::optional<Json> message = client::ParseExchangeJson(*text);
    if (message && message->is_object()) {
      HandleMessage(*message);
    } else {
      Log("ignored a message from the exchange that is not a JSON object: " + Excerpt(*text));
    }
  }
}

void Agent::Send(const Json& message) {
  std::shared_ptr<client::WebSocketClient> ws;
  {
    std::lock_guard lock(mu_);
    ws = ws_;
  }
  if (ws) (void)ws->Send(base::DumpJson(message));
}

bool Agent::TrackLease(const Json& lease) {
  const std::optional<core::LeaseId> id = Uint64Field(lease, "lease");
  if (!id || *id == 0) return false;
  // Absent fields take their defaults; present ones must make sense, or the lease is not
  // taken on (a job with nonsense limits must not start).
  auto field_or = [&lease](std::string_view key, int64_t fallback) -> std::optional<int64_t> {
    return client::FindField(lease, key) != nullptr ? Int64Field(lease, key) : fallback;
  };
  const std::optional<int64_t> slots = field_or("slots", 1);
  const std::optional<int64_t> max_hours = field_or("max_hours", 1);
  const std::optional<int64_t> start = field_or("start", 0);
  if (!slots || *slots < 1 || *slots > sandbox::kSlotsMax || !max_hours || *max_hours < 1 ||
      *max_hours > kLeaseHoursMax || !start) {
    return false;
  }
  std::lock_guard lock(mu_);
  if (leases_.contains(*id)) return true;  // A lease in the welcome and in lease_started.
  auto state = std::make_shared<LeaseState>();
  state->lease = *id;
  state->slots = *slots;
  state->max_hours = static_cast<int32_t>(*max_hours);
  state->start = *start;
  auto cancel = sandbox::CancelToken::Create();
  if (cancel.ok()) state->cancel = std::move(*cancel);
  leases_[*id] = state;
  Log("lease " + std::to_string(*id) + " started: " + std::to_string(state->slots) + " slots");
  return true;
}

void Agent::HandleMessage(const Json& message) {
  const std::optional<std::string> type = StringField(message, "type");
  const std::optional<core::LeaseId> lease = Uint64Field(message, "lease");
  auto ignore = [&] {
    Log("ignored a malformed message from the exchange: " + ExcerptJson(message));
  };
  if (!type) return ignore();
  if (*type == "lease_started") {
    if (!TrackLease(message)) return ignore();
  } else if (*type == "task") {
    const Json* spec = ObjectField(message, "spec");
    if (!lease || spec == nullptr) return ignore();
    StartTask(*lease, *spec);
  } else if (*type == "lease_ended") {
    const Json* reason = client::FindField(message, "reason");
    if (!lease || (reason != nullptr && !reason->is_string())) return ignore();
    EndedByExchange(*lease, StringField(message, "reason").value_or(""));
  } else if (*type == "ack" || *type == "error") {
    const std::string id = StringField(message, "id").value_or("");
    uint64_t answered = 0;
    if (id.starts_with("result-") && absl::SimpleAtoi(id.substr(7), &answered)) {
      // Answered: accepted, or refused for good (the task's grace ran out, say).
      std::lock_guard lock(mu_);
      pending_results_.erase(answered);
      results_in_flight_.erase(answered);
    }
    if (*type == "error") Log("the exchange refused a message: " + ExcerptJson(message));
  }
  // Other types (added to the protocol later) are not for this agent: ignored.
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
  state->thread = std::thread([this, state, spec_text = base::DumpJson(spec_json)] {
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
      // A download is one blob, held whole; the exchange sends none larger.
      http_options.response_body_bytes_max =
          std::max<uint64_t>(options_.blob_bytes_max, kAgentFileBytesMax);
      auto http = client::ExchangeClient::Connect(options_.exchange_url, http_options);
      const TaskBlobs blobs = ExchangeBlobs(http, options_.blob_bytes_max);
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
      state->cpu_seconds = Int64Field(result, "cpu_ms").value_or(0) / 1000;
      state->peak_memory_mib = Int64Field(result, "peak_memory_mib").value_or(0);
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
    const Json* fields = order.ok() ? ObjectField(*order, "order") : nullptr;
    if (fields != nullptr && StringField(*fields, "status") == "open") {
      open = std::max<int64_t>(0, Int64Field(*fields, "remaining").value_or(0));
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
    for (const Json& market : ElementsOf(ArrayField(*markets, "items"))) {
      const std::optional<std::string> tick_text = StringField(market, "tick");
      if (StringField(market, "name") != options_.market || !tick_text) continue;
      const base::ParsedMicros parsed = base::ParseMicros(*tick_text);
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
    if (answer.ok() && StringField(*answer, "status") == "replaced") {
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
    const Json* order = placed.ok() ? ObjectField(*placed, "order") : nullptr;
    const uint64_t id = order != nullptr ? Uint64Field(*order, "id").value_or(0) : 0;
    if (id != 0) {
      sell = id;
      offered_price_ = *ask;
      Log("offering " + std::to_string(want) + " slots at " + base::FormatMicros(*ask));
    } else if (placed.ok()) {
      // Placed, but the answer names no order: the agent cannot follow that one.
      Log("the exchange's answer to a new offer names no order: " + ExcerptJson(*placed));
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
