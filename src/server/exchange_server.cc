#include "src/server/exchange_server.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "spdlog/spdlog.h"
#include "src/protocol/identity.h"
#include "src/base/files.h"
#include "src/base/status.h"
#include "src/base/thread_name.h"
#include "src/journal/prune.h"
#include "src/server/project_journal.h"

namespace ocx::server {
namespace {

constexpr char kOperatorName[] = "operator";
// Snapshots kept on disk (the newest and one before it, in case it does not verify).
constexpr size_t kSnapshotsKept = 2;
// The query store commits at most this often under load (reads that need it current flush).
constexpr int64_t kStoreCommitIntervalMs = 100;
// The query store's writer runs at a lower priority than the threads on the acknowledgement
// path (SqliteStoreOptions::writer_nice says why): in `ocx bench api` it lowered the p99 of
// order latency by about a tenth.
constexpr int kStoreWriterNice = 10;

}  // namespace

ExchangeServer::ExchangeServer(ExchangeServerOptions options) : options_(std::move(options)) {}

ExchangeServer::~ExchangeServer() { (void)Stop(); }

absl::StatusOr<std::unique_ptr<ExchangeServer>> ExchangeServer::Start(
    ExchangeServerOptions options) {
  if (options.clock == nullptr) return absl::InvalidArgumentError("a clock is required");
  const absl::Status valid = api::ValidateServerConfig(options.config);
  if (!valid.ok()) return valid;
  std::unique_ptr<ExchangeServer> server(new ExchangeServer(std::move(options)));
  const absl::Status opened = server->Open();
  if (!opened.ok()) {
    (void)server->Stop();
    return opened;
  }
  return server;
}

absl::Status ExchangeServer::Open() {
  const api::ServerConfig& config = options_.config;
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) {
    return absl::PermissionDeniedError("cannot create data directory " + config.data_dir + ": " +
                                       ec.message());
  }

  store::SqliteStoreOptions store_options;
  store_options.path = config.data_dir + "/store.sqlite";
  store_options.commit_interval_ms = kStoreCommitIntervalMs;
  store_options.batch_commands_max = 16'384;
  store_options.queue_commands_max = 65'536;
  store_options.writer_nice = kStoreWriterNice;
  auto store = store::SqliteStore::Open(store_options);
  if (!store.ok()) return store.status();
  store_ = std::move(*store);

  api::BlobStoreOptions blob_options;
  blob_options.dir = config.data_dir + "/blobs";
  blob_options.blob_bytes_max = config.blob_bytes_max;
  blob_options.quota_bytes_per_account = config.blob_quota_bytes;
  blob_options.disk_free_min_bytes = config.blob_disk_free_min_bytes;
  blob_options.grace_micros = config.blob_grace_s * 1'000'000;
  auto blobs = api::BlobStore::Open(blob_options, options_.clock->NowMicros());
  if (!blobs.ok()) return blobs.status();
  blobs_ = std::move(*blobs);

  api::Histogram& fsync_seconds = metrics_.AddHistogram(
      "ocx_journal_sync_seconds", "Time of one journal batch's write() + fdatasync().",
      api::LatencyBucketsSeconds());
  api::Counter& journal_bytes =
      metrics_.AddCounter("ocx_journal_bytes_total", "Bytes written to the journal.");
  api::Counter& commands =
      metrics_.AddCounter("ocx_commands_total", "Commands sequenced and made durable.");
  api::Counter& trades = metrics_.AddCounter("ocx_trades_total", "Trades (each starts a lease).");
  api::Gauge& sequence = metrics_.AddGauge("ocx_durable_sequence", "Last durable sequence.");

  SequencerOptions sequencer_options;
  sequencer_options.config = options_.exchange;
  sequencer_options.data_dir = config.data_dir;
  sequencer_options.clock = options_.clock;
  sequencer_options.snapshot_every = config.snapshot_every;
  sequencer_options.on_journal_sync = [&fsync_seconds, &journal_bytes](int64_t nanos, size_t bytes) {
    fsync_seconds.Observe(static_cast<double>(nanos) / 1e9);
    journal_bytes.Add(bytes);
  };
  store::Store* store_ptr = store_.get();
  sequencer_options.on_durable = [this, store_ptr, &commands, &trades,
                                  &sequence](const Acked& acked) {
    for (const core::CoreEvent& event : acked.output.events) {
      identities_.Apply(event);
      if (const auto* order = std::get_if<core::OrderEvent>(&event);
          order && order->event.type == engine::EventType::kTrade) {
        trades.Add();
      }
    }
    // Store first, then the sequence reads wait for, then the streams: a client that sees
    // a stream event and then reads must find the event's effects.
    const absl::Status enqueued =
        store_ptr->Enqueue(store::AppliedCommand{acked.sequence, acked.time, acked.output.events});
    if (!enqueued.ok()) {
      // The store is a projection: the journal still has everything, and a restart rebuilds
      // it. Reads will answer 503 until then.
      spdlog::error("query store stopped projecting: {}", enqueued.ToString());
    }
    store_target_sequence_.store(acked.sequence, std::memory_order_release);
    market_data_.Publish(acked.sequence, acked.time, acked.output.events);
    commands.Add();
    sequence.Set(static_cast<int64_t>(acked.sequence));
  };
  sequencer_options.on_snapshot_written = [this](uint64_t) { PruneHistory(); };
  sequencer_options.after_batch = [this](const core::Exchange& x,
                                         const std::vector<core::MachineId>& changed) {
    machine_directory_.Update(x, changed);
  };
  auto sequencer = Sequencer::Open(sequencer_options);
  if (!sequencer.ok()) return sequencer.status();
  sequencer_ = std::move(*sequencer);
  const SequencerRecovery& recovery = sequencer_->recovery();
  spdlog::info("recovered: snapshot at {}, {} journal records replayed, last sequence {}",
               recovery.snapshot_sequence, recovery.replayed, recovery.last_sequence);

  // The store may be behind the journal (it commits after the journal; a crash in between).
  if (store_->last_projected_sequence() < recovery.last_sequence) {
    const uint64_t from = store_->last_projected_sequence();
    auto projected = ProjectJournal(config.data_dir, options_.exchange, *store_);
    if (!projected.ok()) return projected.status();
    spdlog::info("query store caught up from sequence {} ({} commands projected)", from,
                 projected->projected);
  }
  sequencer_->Read([this](const core::Exchange& x) {
    identities_.Load(x);
    market_data_.Load(x);
    machine_directory_.Rebuild(x);
    store_target_sequence_.store(x.last_sequence(), std::memory_order_release);
  });
  OCX_RETURN_IF_ERROR(BootstrapOperator());

  api::ApiDeps deps;
  const std::string web_dir = config.web_dir.empty() ? OCX_DEFAULT_WEB_DIR : config.web_dir;
  if (auto web = api::WebAssets::Load(web_dir); web.ok()) {
    web_ = std::make_unique<api::WebAssets>(*std::move(web));
    spdlog::info("dashboard: {} files ({} KiB) from {}", web_->file_count(),
                 web_->total_bytes() / 1024, web_dir);
  } else {
    deps.web_unavailable = std::string(web.status().message());
    spdlog::warn("dashboard not served: {}", deps.web_unavailable);
  }
  deps.web = web_.get();
  deps.gateway = sequencer_.get();
  deps.machines = &machine_directory_;
  deps.store = store_.get();
  deps.blobs = blobs_.get();
  deps.identities = &identities_;
  deps.market_data = &market_data_;
  deps.metrics = &metrics_;
  deps.clock = options_.clock;
  deps.config = config;
  deps.exchange = options_.exchange;
  deps.store_target_sequence = &store_target_sequence_;
  deps.operator_token_path = operator_token_path();
  api_ = std::make_unique<api::Api>(std::move(deps));

  api::HttpServerOptions http_options;
  http_options.address = config.listen_address;
  http_options.port = config.port;
  http_options.io_threads = config.io_threads;
  http_options.tls_cert_file = config.tls_cert_file;
  http_options.tls_key_file = config.tls_key_file;
  http_options.header_bytes_max = config.header_bytes_max;
  http_options.ws_message_bytes_max = config.ws_message_bytes_max;
  http_options.ws_outbound_messages_max = config.ws_outbound_messages_max;
  http_options.ws_outbound_bytes_max = config.ws_outbound_bytes_max;
  http_options.connections_max = config.connections_max;
  http_options.connections_per_ip_max = config.connections_per_ip_max;
  http_options.agent_connections_reserved = config.agent_connections_reserved;
  http_options.idle_timeout_s = config.idle_timeout_s;
  auto http = api::HttpServer::Start(http_options, api_.get());
  if (!http.ok()) return http.status();
  http_ = std::move(*http);

  ticker_ = std::thread([this] {
    base::NameThisThread("ocx-ticker");
    TickLoop();
  });
  spdlog::info("listening on {}", url());
  return absl::OkStatus();
}

absl::Status ExchangeServer::BootstrapOperator() {
  if (identities_.AnyOperator()) return absl::OkStatus();
  const std::string token = protocol::NewApiToken();
  auto acked = sequencer_->Execute(
      core::CreateAccount{0, kOperatorName, core::Role::kOperator, protocol::TokenHash(token)});
  if (!acked.ok()) return acked.status();
  if (!acked->output.result.accepted) {
    return absl::FailedPreconditionError("cannot create the operator account: " +
                                         acked->output.result.message);
  }
  OCX_RETURN_IF_ERROR(base::WriteFileAtomically(operator_token_path(), token + "\n", 0600));
  spdlog::info("created the operator account {}; its token is in {}",
               acked->output.result.account, operator_token_path());
  return absl::OkStatus();
}

void ExchangeServer::TickLoop() {
  std::unique_lock lock(tick_mu_);
  while (!tick_cv_.wait_for(lock, std::chrono::milliseconds(options_.config.tick_interval_ms),
                            [this] { return tick_stop_; })) {
    if (!sequencer_->Submit(core::Tick{}, nullptr).ok()) return;
    const int64_t now = options_.clock->NowMicros();
    if (now >= next_blob_gc_micros_) {
      next_blob_gc_micros_ = now + options_.config.blob_gc_interval_s * 1'000'000;
      lock.unlock();
      CollectBlobGarbage();
      lock.lock();
    }
  }
}

void ExchangeServer::PruneHistory() {
  // Two snapshots are kept (should the newest not verify, recovery falls back to the other),
  // and the newest one the query store has passed (its catch-up starts there: ProjectJournal).
  // Journal records are kept from the oldest snapshot kept on. While no snapshot is at or
  // below the store's position, nothing of the journal is deleted (the store would need it
  // from the first record).
  const std::string data_dir = options_.config.data_dir;
  const uint64_t store_at = store_->last_projected_sequence();
  journal::PruneReport report;
  const auto kept =
      journal::PruneSnapshots(data_dir + "/snapshots", kSnapshotsKept, store_at, &report);
  if (!kept.ok()) {
    spdlog::warn("pruning snapshots stopped: {}", kept.status().ToString());
    return;
  }
  if (kept->empty() || kept->front() > store_at) return;
  const uint64_t floor = kept->front();
  const auto segments = journal::PruneSegments(data_dir + "/journal", floor + 1);
  if (!segments.ok()) {
    spdlog::warn("pruning the journal stopped: {}", segments.status().ToString());
    return;
  }
  if (report.files_deleted + segments->files_deleted > 0) {
    spdlog::info("pruned {} snapshot files and {} journal segments ({} bytes) before sequence {}",
                 report.files_deleted, segments->files_deleted,
                 report.bytes_deleted + segments->bytes_deleted, floor + 1);
  }
}

void ExchangeServer::CollectBlobGarbage() {
  const int64_t now = options_.clock->NowMicros();
  const int64_t since = now - options_.config.blob_grace_s * 1'000'000;
  store::Store* store = store_.get();
  // The store must be current: a task assigned a moment ago must count.
  if (!store->Flush().ok()) return;
  const auto collected = blobs_->CollectGarbage(
      now, [store, since](const std::string& sha256) { return store->BlobReferenced(sha256, since); });
  if (!collected.ok()) {
    spdlog::warn("blob garbage collection stopped: {}", collected.status().ToString());
  } else if (collected->deleted > 0) {
    spdlog::info("blob garbage collection: {} of {} old blobs deleted, {} bytes freed",
                 collected->deleted, collected->examined, collected->bytes_freed);
  }
}

std::string ExchangeServer::url() const {
  return std::string(http_->tls() ? "https" : "http") + "://" + options_.config.listen_address +
         ":" + std::to_string(port());
}

std::string ExchangeServer::operator_token_path() const {
  return options_.config.data_dir + "/operator.token";
}

absl::Status ExchangeServer::Stop() {
  if (stopped_) return absl::OkStatus();
  stopped_ = true;
  if (api_) api_->BeginShutdown();
  if (http_) http_->Stop();
  {
    std::lock_guard lock(tick_mu_);
    tick_stop_ = true;
  }
  tick_cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
  absl::Status status;
  if (sequencer_) status = sequencer_->Stop();
  if (api_) api_->StopWorkers();
  if (store_) {
    const absl::Status closed = store_->Close();
    if (status.ok()) status = closed;
  }
  return status;
}

}  // namespace ocx::server
