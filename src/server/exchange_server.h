// `ocx exchange`: the whole exchange in one process, wired together.
//
//   HttpServer (Beast, I/O threads) -> Api -> Sequencer (one thread) -> journal (fsync)
//        on_durable, in sequence order: query store (SQLite) + identities + market data
//        -> replies, WebSocket streams, agent channels
//
// Start: opens the data directory (journal/, snapshots/, store.sqlite, blobs/), recovers
// the core (snapshot + journal tail), brings the query store up to the journal, creates the
// operator on a first start (its token written once to <data_dir>/operator.token, mode
// 0600, never logged), then listens. A ticker submits a Tick every tick_interval_ms so that
// expiries, max_hours and heartbeat timeouts happen without other traffic.
//
// Stop (SIGTERM in the CLI): refuses new requests, answers those in flight, stops the
// ticker, drains the sequencer (everything acknowledged is durable) and closes the store.
// Thread-safety: Start/Stop from one thread; accessors from any.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "src/api/api.h"
#include "src/api/http_server.h"
#include "src/api/server_config.h"
#include "src/base/clock.h"
#include "src/core/machine_directory.h"
#include "src/server/sequencer.h"
#include "src/store/sqlite/sqlite_store.h"

namespace ocx::server {

struct ExchangeServerOptions {
  api::ServerConfig config;
  core::ExchangeConfig exchange = core::ExchangeConfig::Default();
  const base::Clock* clock = nullptr;  // Required; outlives the server.
};

class ExchangeServer {
 public:
  static absl::StatusOr<std::unique_ptr<ExchangeServer>> Start(ExchangeServerOptions options);
  ~ExchangeServer();  // Stop().
  ExchangeServer(const ExchangeServer&) = delete;
  ExchangeServer& operator=(const ExchangeServer&) = delete;

  uint16_t port() const { return http_->port(); }
  // http(s)://address:port
  std::string url() const;
  std::string operator_token_path() const;
  const SequencerRecovery& recovery() const { return sequencer_->recovery(); }
  // The API itself, for callers in the same process that drive it without a socket (the
  // fuzz harnesses: Api::Handle and Api::OpenWebSocket).
  api::Api& api() { return *api_; }
  // What the HTTP server counts (tests).
  api::HttpServerCounts connection_counts() const { return http_->counts(); }
  // Stops everything (idempotent); the first error of the sequencer or the store, if any.
  absl::Status Stop();

 private:
  explicit ExchangeServer(ExchangeServerOptions options);
  absl::Status Open();
  absl::Status BootstrapOperator();
  void TickLoop();
  // Deletes snapshots but the newest two and the journal segments both they and the query
  // store have passed (journal/prune.h), on the snapshot thread after each snapshot.
  void PruneHistory();
  // Deletes blobs no task needs any more (BlobStore::CollectGarbage), from the ticker thread.
  void CollectBlobGarbage();

  ExchangeServerOptions options_;
  api::MetricsRegistry metrics_;
  api::IdentityRegistry identities_;
  api::MarketData market_data_;
  core::MachineDirectory machine_directory_;  // Published after each batch (after_batch).
  std::atomic<uint64_t> store_target_sequence_{0};  // See ApiDeps::store_target_sequence.
  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<api::BlobStore> blobs_;
  std::unique_ptr<Sequencer> sequencer_;
  std::unique_ptr<api::WebAssets> web_;  // Null when the dashboard is not built.
  std::unique_ptr<api::Api> api_;
  std::unique_ptr<api::HttpServer> http_;

  std::mutex tick_mu_;
  std::condition_variable tick_cv_;
  bool tick_stop_ = false;  // Guarded by tick_mu_.
  int64_t next_blob_gc_micros_ = 0;  // Ticker thread only.
  std::thread ticker_;
  bool stopped_ = false;
};

}  // namespace ocx::server
