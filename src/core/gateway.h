// CommandGateway: what the layers above the core (the API, the agent channel) see of the
// sequencer. The sequencer (src/server) implements it; the API depends only on this, so it
// never includes the server.
#pragma once

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "src/core/commands.h"
#include "src/core/events.h"

namespace ocx::core {

class Exchange;

// What a command did, delivered once it is durable.
struct Acked {
  uint64_t sequence = 0;
  int64_t time = 0;
  ApplyOutput output;
};

using AckCallback = std::function<void(const Acked&)>;

// Thread-safe: every method may be called from any thread.
class CommandGateway {
 public:
  virtual ~CommandGateway() = default;
  // Queues a command; `done` runs once it is durable, on the thread that delivers every
  // acknowledgement in order (keep it quick). Errors: InvalidArgument for text that is not
  // UTF-8 (nothing is applied), FailedPrecondition once stopped or failed.
  virtual absl::Status Submit(CommandBody command, AckCallback done) = 0;
  // Runs `read` on the state under the lock the sequencer applies commands under: for rare
  // operator reads only (every command waits meanwhile). Everything else reads the views
  // published after each batch (MachineDirectory).
  virtual void Read(const std::function<void(const Exchange&)>& read) const = 0;
  // The last command that is durable and delivered (everything up to it has been).
  virtual uint64_t durable_sequence() const = 0;
  // OK, or why the gateway stopped for good.
  virtual absl::Status status() const = 0;
};

}  // namespace ocx::core
