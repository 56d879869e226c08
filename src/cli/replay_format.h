// The replay format of RULEBOOK section 2 ("Replay format"), specified in
// docs/formats/replay.md: one JSON command a line in, one JSON event a line out.
#pragma once

#include <cstdint>
#include <istream>
#include <ostream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "src/engine/command.h"
#include "src/engine/order_book.h"

namespace ocx::cli {

// Turns replay lines into engine commands. Keeps the state the format needs across lines:
// account names -> ids, the last timestamp (time never goes backwards), and every order id
// the file has used (ids are unique across the file, so a reused id is rejected even after
// the first order finished).
// Not thread-safe.
class ReplayParser {
 public:
  enum class Outcome {
    kCommand,    // *command holds the command to apply.
    kBlank,      // An empty or all-whitespace line: nothing to do.
    kMalformed,  // *error says why; the line is skipped.
  };

  Outcome Parse(std::string_view line, engine::Command* command, std::string* error);

  // Records that an order id entered the book's life (a `new` that was not rejected by
  // the parser); a later `new` with the same id is a duplicate.
  bool IdUsedBefore(engine::OrderId id) const { return used_ids_.contains(id); }
  void MarkIdUsed(engine::OrderId id) { used_ids_.insert(id); }

 private:
  engine::AccountId InternAccount(const std::string& name);

  std::unordered_map<std::string, engine::AccountId> accounts_;
  std::unordered_set<engine::OrderId> used_ids_;
  engine::Timestamp last_time_ = 0;
};

// Appends one event as a JSON line (with '\n') to *out.
void AppendEventJson(const engine::Event& event, std::string* out);

struct ReplayStats {
  uint64_t lines = 0;
  uint64_t commands = 0;
  uint64_t malformed = 0;
  uint64_t trades = 0;
};

// Applies a whole replay stream to a fresh one-market book with the given tick, writing
// one event a line to `out` and a report per malformed line ("line N: why") to `errors`.
ReplayStats Replay(std::istream& in, engine::PriceMicros tick_micros, std::ostream& out,
                   std::ostream& errors);
// The same with the whole book configuration: the fuzz harness (fuzz/replay_fuzz.cc) runs
// millions of short files and reserves a small book for each, not the default's 64 Ki orders.
ReplayStats Replay(std::istream& in, const engine::BookConfig& book_config, std::ostream& out,
                   std::ostream& errors);

}  // namespace ocx::cli
