// The provider agent (`ocx provider --exchange URL`): one machine's side of the exchange.
//
// It keeps an Ed25519 machine identity in its data directory, registers the machine once
// (discovered facts + owner policy), and keeps a WebSocket to the exchange's /v1/agent
// channel (challenge-response; heartbeats every 5 s; reconnects with back-off). It keeps a
// sell order for the machine's free capacity at the policy's price while the policy allows
// (availability windows, owner load), and withdraws it otherwise, reclaiming running spot
// leases when the owner needs the machine back. A lease's task (docs/formats/task.md) runs in
// the sandbox: inputs fetched from the exchange's blobs, output relayed live, signed usage
// reported every 5 s, outputs uploaded, the result reported, the lease ended, the job's
// directory wiped. A lease that ends first (release, reclaim, expiry) kills its job.
//
// The exchange is a peer outside this process: everything it sends (WebSocket messages, REST
// answers) is parsed strictly and read with its types checked (client/json_fields.h). A
// message of the wrong shape is logged and ignored; a challenge or welcome of the wrong shape
// ends the connection, which is made again. Nothing it sends can crash the agent.
//
// To start a task without waiting for the sandbox's set-up, it keeps a sandbox prepared
// (AgentOptions::warm_sandboxes) in data_dir/warm/, moved to jobs/ when a task takes it.
//
// Threads: Run() owns the connection; each task runs on a thread of its own, and one more
// prepares sandboxes. Time for the
// schedule comes from a base::Clock so tests can reason about it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "src/agent/policy.h"
#include "src/agent/task_runner.h"
#include "src/core/types.h"
#include "src/sandbox/sandbox.h"

namespace ocx::client {
class ExchangeClient;
class WebSocketClient;
}  // namespace ocx::client

namespace ocx::agent {

inline constexpr int64_t kHeartbeatIntervalMs = 5'000;
inline constexpr int64_t kUsageIntervalMs = 5'000;
inline constexpr int64_t kMarketIntervalMs = 10'000;
inline constexpr int64_t kReconnectDelayMinMs = 250;
inline constexpr int64_t kReconnectDelayMaxMs = 30'000;
// How long a job of a reclaimed lease may still run after SIGTERM-equivalent notice
// (RULEBOOK section 4: reclaim with a 30 s notice to the job).
inline constexpr int64_t kReclaimNoticeMs = 30'000;
// Live output is sent in chunks of at most this many bytes (under the exchange's 64 KiB
// WebSocket message limit, JSON escaping included), at least every kLogFlushMs.
inline constexpr size_t kLogChunkBytes = 16 * 1024;
inline constexpr int64_t kLogFlushMs = 100;

struct AgentOptions {
  std::string exchange_url;    // http(s)://host:port
  std::string provider_token;  // The provider account's API token (registers, sells, blobs).
  std::string data_dir;        // machine.key, machine.json, jobs/, warm/
  OwnerPolicy policy;
  std::string market = "cpu";  // The market it sells in.
  // Measured facts are discovered unless given (tests pass small, fixed machines).
  std::optional<core::MachineSpec> spec;
  sandbox::Sandbox* sandbox = nullptr;  // Not owned; required.
  // Called when a job's process is about to start in the sandbox, and when its first output
  // arrives (the job is running): dispatch latency (`ocx bench dispatch`).
  std::function<void(core::LeaseId)> on_job_started;
  std::function<void(core::LeaseId)> on_job_first_output;
  // How often the offer is checked against free capacity and the policy (also right after a
  // lease ends, so freed capacity is offered again at once).
  int64_t market_interval_ms = kMarketIntervalMs;
  // How long a reclaimed lease's job may still run (RULEBOOK section 4: 30 s).
  int64_t reclaim_notice_ms = kReclaimNoticeMs;
  // Sandboxes kept prepared (Sandbox::Prepare) for the next tasks without network, so that
  // a task starts without waiting for the sandbox's set-up. 0: every job starts afresh.
  int warm_sandboxes = 1;
  // The exchange's bound on one blob (its `blob_bytes_max`, 64 MiB unless configured
  // otherwise): a task's output file larger than this is left out of its result (and named
  // in the result's message) instead of being uploaded, and its logs are cut to it.
  uint64_t blob_bytes_max = kDefaultBlobBytesMax;
  // Called with every state change worth a log line ("registered machine 3", ...).
  std::function<void(const std::string&)> log;
};

struct AgentStatus {
  core::MachineId machine = 0;
  bool connected = false;
  int64_t connections = 0;      // Successful authentications so far.
  int64_t heartbeats_sent = 0;
  int64_t usage_reports_sent = 0;
  int64_t tasks_started = 0;
  int64_t tasks_finished = 0;
  int64_t tasks_prewarmed = 0;   // Of tasks_started: those whose job ran in a prepared sandbox.
  size_t warm_sandboxes = 0;     // Prepared now, waiting for a task.
  core::OrderId sell_order = 0;  // The open sell, 0 when none.
  int64_t offered_slots = 0;
  size_t active_leases = 0;
};

class Agent {
 public:
  // Loads or creates the identity, registers the machine if this data directory has none
  // for this exchange. Errors: an unreachable exchange, a refused registration, a bad data
  // directory.
  static absl::StatusOr<std::unique_ptr<Agent>> Start(AgentOptions options);
  ~Agent();  // Stop()s.
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Runs the connection loop on a thread of its own until Stop().
  void RunInBackground();
  // Stops: kills running jobs (their leases end when the exchange notices), cancels the
  // sell order when the exchange is reachable, closes the connection, joins every thread.
  void Stop();

  core::MachineId machine() const { return machine_; }
  AgentStatus status() const;

 private:
  struct LeaseState;
  explicit Agent(AgentOptions options);

  absl::Status LoadOrCreateIdentity();
  absl::Status RegisterIfNeeded();
  void ConnectionLoop();
  absl::Status Session();  // One connection, until it fails or Stop().
  void HandleMessage(const nlohmann::json& message);
  // Starts following a lease the exchange announced; false (and nothing done) when the
  // announcement is malformed.
  bool TrackLease(const nlohmann::json& lease);
  void StartTask(core::LeaseId lease, const nlohmann::json& spec);
  void RunTaskThread(std::shared_ptr<LeaseState> state);
  void EndedByExchange(core::LeaseId lease, const std::string& reason);
  void SendUsageReports(int64_t now_ms);
  void MaintainMarket(int64_t now_ms);
  void Send(const nlohmann::json& message);
  void WarmerLoop();  // Keeps options_.warm_sandboxes prepared, until Stop().
  std::optional<WarmStart> TakeWarmStart();
  void Log(const std::string& line) const;
  int64_t NowMs() const;

  AgentOptions options_;
  std::string secret_key_;  // Raw bytes (libsodium's format); never logged.
  std::string public_key_;
  core::MachineId machine_ = 0;
  core::Quantity capacity_ = 0;  // Slots in options_.market.

  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;                                      // Guarded by mu_.
  std::unique_ptr<client::ExchangeClient> http_;               // Connection thread only.
  std::shared_ptr<client::WebSocketClient> ws_;                // Guarded by mu_.
  std::map<core::LeaseId, std::shared_ptr<LeaseState>> leases_;  // Guarded by mu_.
  // Task results not yet acknowledged by the exchange (resent after a reconnect).
  std::map<core::LeaseId, nlohmann::json> pending_results_;  // Guarded by mu_.
  std::set<core::LeaseId> results_in_flight_;                 // Sent, unanswered. Idem.
  AgentStatus status_;                                        // Guarded by mu_.
  std::unique_ptr<LoadGovernor> governor_;                    // Connection thread only.
  std::optional<CpuSample> last_cpu_;                         // Connection thread only.
  int64_t offered_price_ = 0;  // Of the open sell. Connection thread only.
  std::thread connection_thread_;
  std::thread warmer_thread_;
  std::condition_variable warm_cv_;  // warm_ shrank, or stopping.
  std::vector<WarmStart> warm_;      // Guarded by mu_.
  int64_t last_warm_take_ms_ = 0;    // Guarded by mu_.
  std::atomic<uint64_t> next_message_id_{1};
  std::atomic<bool> market_dirty_{false};  // A lease ended: look at the offer now.
};

}  // namespace ocx::agent
