// Fuzz harness: the replay format (src/cli/replay_format.h, docs/formats/replay.md), which
// `ocx replay` reads line by line from any file and applies to a one-market book.
//
// The input is the file. Replay runs it with the CLI's default tick (0.0001) on a book that
// reserves room for a few orders only (the default reserves 64 Ki, which cost 8 ms per input
// under ASan), and writes the events to a stream that drops them. Properties checked: no crash (the
// parser, the engine's own assertions, the event writer), and the counts add up: every command and
// malformed line is a line.
#include <cstdint>
#include <istream>
#include <ostream>
#include <streambuf>
#include <string_view>

#include "fuzz/fuzz_util.h"
#include "src/base/assert.h"
#include "src/cli/replay_format.h"

namespace {

// Reads the fuzzer's bytes in place (std::getline only reads through the get area).
class InputBuffer : public std::streambuf {
 public:
  explicit InputBuffer(std::string_view bytes) {
    char* begin = const_cast<char*>(bytes.data());
    setg(begin, begin, begin + bytes.size());
  }
};

ocx::engine::BookConfig SmallBook() {
  ocx::engine::BookConfig config;
  config.tick_micros = 100;  // `ocx replay`'s default, 0.0001.
  config.expected_orders = 64;
  config.expected_levels = 64;
  return config;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  InputBuffer buffer(ocx::fuzz::AsText(data, size));
  std::istream in(&buffer);
  std::ostream events(nullptr);  // No buffer: writes are dropped.
  std::ostream errors(nullptr);
  static const ocx::engine::BookConfig config = SmallBook();
  const ocx::cli::ReplayStats stats = ocx::cli::Replay(in, config, events, errors);
  OCX_ASSERT(stats.commands + stats.malformed <= stats.lines);
  OCX_ASSERT(stats.lines <= size);
  return 0;
}
