#include "src/server/sequencer.h"

#include <filesystem>
#include <future>

#include "spdlog/spdlog.h"
#include "src/base/assert.h"
#include "src/base/thread_name.h"
#include "src/core/codec.h"
#include "src/journal/file_journal_reader.h"
#include "src/journal/snapshot.h"
#include "src/protocol/identity.h"

namespace ocx::server {
namespace {

std::string JournalDir(const std::string& data_dir) { return data_dir + "/journal"; }
std::string SnapshotDir(const std::string& data_dir) { return data_dir + "/snapshots"; }

// Forwards the journal's durability callbacks to the sequencer once it exists (the journal
// is opened, and replayed, before the Sequencer object is built).
struct DurableRelay {
  std::mutex mu;
  std::function<void(uint64_t)> target;  // Guarded by mu.
};

}  // namespace

absl::StatusOr<std::unique_ptr<Sequencer>> Sequencer::Open(SequencerOptions options) {
  if (options.clock == nullptr) return absl::InvalidArgumentError("sequencer: no clock");
  if (options.data_dir.empty()) return absl::InvalidArgumentError("sequencer: no data directory");
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError("cannot create data directory " + options.data_dir +
                                         ": " + ec.message());
  }
  SequencerRecovery recovery;

  // 1. The latest snapshot that verifies, or a fresh exchange.
  std::unique_ptr<core::Exchange> exchange;
  absl::StatusOr<journal::LatestSnapshot> latest =
      journal::FindLatestSnapshot(SnapshotDir(options.data_dir));
  if (!latest.ok()) return latest.status();
  if (latest->snapshot.has_value()) {
    if (latest->snapshot->body_version != core::kSnapshotVersion) {
      return absl::FailedPreconditionError("snapshot " + latest->path +
                                           " has an unsupported body version");
    }
    absl::StatusOr<std::unique_ptr<core::Exchange>> restored =
        core::Exchange::Restore(options.config, latest->snapshot->body);
    if (!restored.ok()) {
      return absl::DataLossError("snapshot " + latest->path + ": " +
                                 std::string(restored.status().message()));
    }
    exchange = std::move(*restored);
    recovery.snapshot_sequence = latest->snapshot->sequence;
    OCX_ASSERT(exchange->last_sequence() == recovery.snapshot_sequence);
  } else {
    exchange = std::make_unique<core::Exchange>(options.config);
  }

  // 2. The journal: its own recovery truncates a torn tail or refuses corruption.
  auto relay = std::make_shared<DurableRelay>();
  journal::FileJournalOptions journal_options;
  journal_options.dir = JournalDir(options.data_dir);
  journal_options.first_sequence = exchange->last_sequence() + 1;
  journal_options.segment_bytes = options.journal_segment_bytes;
  journal_options.on_batch_synced = options.on_journal_sync;
  journal_options.on_durable = [relay](uint64_t durable) {
    std::lock_guard<std::mutex> lock(relay->mu);
    if (relay->target) relay->target(durable);
  };
  absl::StatusOr<std::unique_ptr<journal::FileJournal>> journal =
      journal::FileJournal::Open(journal_options);
  if (!journal.ok()) return journal.status();
  recovery.journal = (*journal)->recovery().ToString();

  // 3. Replay the records after the snapshot.
  if ((*journal)->next_sequence() > exchange->last_sequence() + 1) {
    absl::StatusOr<std::unique_ptr<journal::FileJournalReader>> reader =
        journal::FileJournalReader::Open(JournalDir(options.data_dir),
                                         exchange->last_sequence() + 1);
    if (!reader.ok()) return reader.status();
    journal::RecordView record;
    core::ApplyOutput scratch;
    for (;;) {
      absl::StatusOr<bool> more = (*reader)->Next(&record);
      if (!more.ok()) return more.status();
      if (!*more) break;
      if (record.payload_version != core::kCommandPayloadVersion) {
        return absl::FailedPreconditionError("journal record " + std::to_string(record.sequence) +
                                             " has an unsupported payload version");
      }
      absl::StatusOr<core::CommandBody> command = core::DecodeCommand(record.payload);
      if (!command.ok()) {
        return absl::DataLossError("journal record " + std::to_string(record.sequence) + ": " +
                                   std::string(command.status().message()));
      }
      if (record.sequence != exchange->last_sequence() + 1 || record.timestamp < exchange->now()) {
        return absl::DataLossError("journal record " + std::to_string(record.sequence) +
                                   " does not follow the state (sequence or time out of order)");
      }
      scratch.events.clear();
      exchange->Apply(record.sequence, record.timestamp, *command, &scratch);
      ++recovery.replayed;
    }
  }
  if ((*journal)->next_sequence() != exchange->last_sequence() + 1) {
    return absl::DataLossError(
        "the journal ends at sequence " + std::to_string((*journal)->next_sequence() - 1) +
        " but the state is at " + std::to_string(exchange->last_sequence()) +
        ": records the snapshot covers are missing");
  }
  recovery.last_sequence = exchange->last_sequence();

  // Recovery kept no list of changed machines; from now on the views follow every batch.
  if (options.after_batch) exchange->TrackMachineChanges(true);
  std::unique_ptr<Sequencer> sequencer(
      new Sequencer(std::move(options), std::move(exchange), recovery));
  sequencer->journal_ = std::move(*journal);
  {
    std::lock_guard<std::mutex> lock(relay->mu);
    Sequencer* target = sequencer.get();
    relay->target = [target](uint64_t durable) { target->OnDurable(durable); };
  }
  sequencer->delivery_thread_ = std::thread([s = sequencer.get()] {
    base::NameThisThread("ocx-delivery");
    s->DeliveryLoop();
  });
  if (sequencer->options_.snapshot_every > 0) {
    sequencer->snapshot_thread_ = std::thread([s = sequencer.get()] {
      base::NameThisThread("ocx-snapshot");
      s->SnapshotLoop();
    });
  }
  sequencer->thread_ = std::thread([s = sequencer.get()] {
    base::NameThisThread("ocx-sequencer");
    s->Loop();
  });
  return sequencer;
}

Sequencer::Sequencer(SequencerOptions options, std::unique_ptr<core::Exchange> exchange,
                     SequencerRecovery recovery)
    : options_(std::move(options)),
      recovery_(std::move(recovery)),
      exchange_(std::move(exchange)),
      last_time_(exchange_->now()) {
  delivered_sequence_.store(exchange_->last_sequence(), std::memory_order_release);
}

Sequencer::~Sequencer() { (void)Stop(); }

absl::Status Sequencer::status() const {
  std::lock_guard<std::mutex> lock(inbound_mu_);
  return status_;
}

absl::Status Sequencer::Submit(core::CommandBody command, AckCallback done) {
  if (!core::TextIsValid(command)) {
    return absl::InvalidArgumentError("a text field of the command is not valid UTF-8");
  }
  std::unique_lock<std::mutex> lock(inbound_mu_);
  space_cv_.wait(lock, [this] {
    return inbound_.size() < options_.inbound_max || stopping_ || !status_.ok();
  });
  if (!status_.ok()) return status_;
  if (stopping_) return absl::FailedPreconditionError("the sequencer is stopping");
  inbound_.push_back(Inbound{std::move(command), std::move(done)});
  inbound_cv_.notify_one();
  return absl::OkStatus();
}

absl::StatusOr<Acked> Sequencer::Execute(core::CommandBody command) {
  auto promise = std::make_shared<std::promise<Acked>>();
  std::future<Acked> future = promise->get_future();
  absl::Status submitted =
      Submit(std::move(command), [promise](const Acked& acked) { promise->set_value(acked); });
  if (!submitted.ok()) return submitted;
  // A failure after submission (the journal broke) means this command is never durable.
  while (future.wait_for(std::chrono::milliseconds(50)) != std::future_status::ready) {
    const absl::Status current = status();
    if (!current.ok()) return current;
  }
  return future.get();
}

void Sequencer::Read(const std::function<void(const core::Exchange&)>& read) const {
  std::lock_guard<std::mutex> lock(state_mu_);
  read(*exchange_);
}

void Sequencer::Loop() {
  std::deque<Inbound> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(inbound_mu_);
      inbound_cv_.wait(lock, [this] { return !inbound_.empty() || stopping_; });
      if (inbound_.empty() || !status_.ok()) return;  // Stopping with nothing left, or failed.
      batch.swap(inbound_);
      space_cv_.notify_all();
    }
    size_t next = 0;
    while (next < batch.size()) {
      ProcessBatch(batch, &next);
      if (failed_.load(std::memory_order_acquire)) return;
    }
    batch.clear();
  }
}

void Sequencer::ProcessBatch(std::deque<Inbound>& batch, size_t* next) {
  if (undelivered_.load(std::memory_order_acquire) >= options_.undelivered_max) {
    // Backpressure from delivery: when acknowledgements (and the store's projection, which
    // on_durable feeds) fall behind, stop applying, so the state never runs ahead of what was
    // delivered by more than a named bound (plus one batch); Submit then blocks on a full
    // inbound queue. (The counter is read without the lock first: below the bound, as nearly
    // always, applying takes no lock that the delivery thread holds.)
    std::unique_lock<std::mutex> lock(pending_mu_);
    delivery_space_cv_.wait(lock, [this] {
      return undelivered_.load(std::memory_order_acquire) < options_.undelivered_max ||
             stop_requested_;
    });
  }
  // The batch is cut so that the undelivered bound stays exact and a snapshot falls exactly
  // every snapshot_every commands, as if commands were applied one at a time.
  size_t count = std::min(batch.size() - *next, std::max<size_t>(1, options_.batch_commands_max));
  const size_t undelivered = undelivered_.load(std::memory_order_acquire);
  if (undelivered < options_.undelivered_max) {
    count = std::min(count, options_.undelivered_max - undelivered);
  } else {
    count = 1;  // Stopping: the wait above gave up; go on one at a time.
  }
  if (options_.snapshot_every > 0) {
    count = std::min<size_t>(count, options_.snapshot_every - since_snapshot_);
  }
  const size_t begin = *next;
  const size_t end = begin + std::max<size_t>(1, count);
  *next = end;
  std::vector<std::string> payloads;
  payloads.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) payloads.push_back(core::EncodeCommand(batch[i].command));
  std::vector<Pending> applied(end - begin);
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    for (size_t i = begin; i < end; ++i) {
      Pending& pending = applied[i - begin];
      pending.done = std::move(batch[i].done);
      Acked& acked = pending.acked;
      acked.sequence = exchange_->last_sequence() + 1;
      acked.time = std::max(options_.clock->NowMicros(), last_time_);
      last_time_ = acked.time;
      exchange_->Apply(acked.sequence, acked.time, batch[i].command, &acked.output);
    }
  }
  // The views first, then the journal: nothing of this batch can be acknowledged before a
  // reader can see it. (This thread is the only writer of the state, so it reads it here
  // without the state mutex.)
  if (options_.after_batch) {
    options_.after_batch(*exchange_, exchange_->TakeChangedMachines());
  }
  std::vector<std::pair<uint64_t, int64_t>> stamps;  // Sequence and time of each command.
  stamps.reserve(applied.size());
  for (const Pending& pending : applied) {
    stamps.emplace_back(pending.acked.sequence, pending.acked.time);
  }
  {
    // Registered before the appends, so the durability callback always finds them.
    std::lock_guard<std::mutex> lock(pending_mu_);
    for (Pending& pending : applied) pending_.push_back(std::move(pending));
    undelivered_.fetch_add(applied.size(), std::memory_order_release);
  }
  for (size_t i = 0; i < stamps.size(); ++i) {
    const auto [sequence, time] = stamps[i];
    OCX_ASSERT(sequence == journal_->next_sequence());
    const absl::Status appended = journal_->Append(
        journal::RecordView{sequence, time, core::kCommandPayloadVersion, payloads[i]});
    if (!appended.ok()) {
      Fail(absl::UnavailableError("journal append failed; the sequencer stopped: " +
                                  std::string(appended.message())));
      return;
    }
  }
  since_snapshot_ += end - begin;
  MaybeSnapshot();
}

void Sequencer::Deliver(const std::function<void()>& callback, const char* what) {
  try {
    callback();
  } catch (const std::exception& e) {
    spdlog::error("incident {}: {} threw: {}", protocol::RandomHex(8), what, e.what());
  } catch (...) {
    spdlog::error("incident {}: {} threw a non-standard exception", protocol::RandomHex(8), what);
  }
}

void Sequencer::MaybeSnapshot() {
  if (options_.snapshot_every == 0 || since_snapshot_ < options_.snapshot_every) return;
  since_snapshot_ = 0;
  SnapshotToWrite snapshot;
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    snapshot.sequence = exchange_->last_sequence();
    snapshot.body = exchange_->Serialize();
  }
  {
    // Waiting for the journal and writing the file happen on the snapshot thread: before,
    // they held the sequencer (and so every order) for the sync and the file's write.
    std::lock_guard<std::mutex> lock(snapshot_mu_);
    snapshot_to_write_ = std::move(snapshot);
  }
  snapshot_cv_.notify_one();
}

void Sequencer::SnapshotLoop() {
  for (;;) {
    SnapshotToWrite snapshot;
    {
      std::unique_lock<std::mutex> lock(snapshot_mu_);
      snapshot_cv_.wait(lock,
                        [this] { return snapshot_to_write_.has_value() || snapshot_stopping_; });
      if (!snapshot_to_write_.has_value()) return;  // Stopping, and nothing left to write.
      snapshot = std::move(*snapshot_to_write_);
      snapshot_to_write_.reset();
    }
    // Only durable state may be snapshotted: a snapshot ahead of the journal could not be
    // continued after a crash.
    const absl::Status durable = journal_->WaitDurable(snapshot.sequence);
    if (!durable.ok()) {
      Fail(durable);
      continue;  // Nothing more is durable; a later snapshot fails the same way.
    }
    // A failed write is let go: the journal still holds everything, so it costs only
    // recovery time. TODO(ocx): report it through metrics once the server has them.
    const absl::StatusOr<std::string> written = journal::WriteSnapshot(
        SnapshotDir(options_.data_dir), snapshot.sequence, core::kSnapshotVersion, snapshot.body);
    if (written.ok() && options_.on_snapshot_written) {
      Deliver([&] { options_.on_snapshot_written(snapshot.sequence); }, "on_snapshot_written");
    }
  }
}

void Sequencer::OnDurable(uint64_t durable_sequence) {
  // On the journal's writer thread: only hand over, so that its next write and sync start
  // now rather than after every acknowledgement of this batch has been delivered.
  {
    std::lock_guard<std::mutex> lock(pending_mu_);
    OCX_ASSERT(durable_sequence >= journal_durable_);
    journal_durable_ = durable_sequence;
  }
  delivery_cv_.notify_one();
}

void Sequencer::DeliveryLoop() {
  std::deque<Pending> ready;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(pending_mu_);
      delivery_cv_.wait(lock, [this] {
        return delivery_stopping_ ||
               (!pending_.empty() && pending_.front().acked.sequence <= journal_durable_);
      });
      while (!pending_.empty() && pending_.front().acked.sequence <= journal_durable_) {
        ready.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
      if (ready.empty() && delivery_stopping_) return;  // Everything durable is delivered.
    }
    for (Pending& p : ready) {
      // Nothing a hook or a reply throws may stop the delivery of everything after it.
      if (options_.on_durable) Deliver([&] { options_.on_durable(p.acked); }, "on_durable");
      delivered_sequence_.store(p.acked.sequence, std::memory_order_release);
      if (p.done) Deliver([&] { p.done(p.acked); }, "an acknowledgement");
    }
    const size_t delivered = ready.size();
    ready.clear();
    {
      // Under the lock, so that a sequencer about to wait on delivery_space_cv_ either sees
      // the new count or is already waiting when the notification comes.
      std::lock_guard<std::mutex> lock(pending_mu_);
      undelivered_.fetch_sub(delivered, std::memory_order_release);
    }
    delivery_space_cv_.notify_one();
  }
}

void Sequencer::Fail(const absl::Status& error) {
  std::lock_guard<std::mutex> lock(inbound_mu_);
  if (status_.ok()) status_ = error;
  failed_.store(true, std::memory_order_release);
  stopping_ = true;
  inbound_cv_.notify_all();
  space_cv_.notify_all();
}

absl::Status Sequencer::Stop() {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  if (stopped_) return status();
  stopped_ = true;
  {
    std::lock_guard<std::mutex> lock(inbound_mu_);
    stopping_ = true;
    inbound_cv_.notify_all();
    space_cv_.notify_all();
  }
  {
    // A loop waiting for delivery to catch up goes on (a broken journal never catches up).
    std::lock_guard<std::mutex> lock(pending_mu_);
    stop_requested_ = true;
  }
  delivery_space_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Close makes every appended record durable; the delivery thread then delivers every
  // acknowledgement before it ends.
  const absl::Status closed = journal_ ? journal_->Close() : absl::OkStatus();
  if (!closed.ok()) Fail(closed);
  {
    std::lock_guard<std::mutex> lock(pending_mu_);
    delivery_stopping_ = true;
  }
  delivery_cv_.notify_one();
  if (delivery_thread_.joinable()) delivery_thread_.join();
  {
    // A snapshot still waiting is written first: everything it captures is durable now.
    std::lock_guard<std::mutex> lock(snapshot_mu_);
    snapshot_stopping_ = true;
  }
  snapshot_cv_.notify_one();
  if (snapshot_thread_.joinable()) snapshot_thread_.join();
  return status();
}

}  // namespace ocx::server
