// Fuzz harness: the exchange command codec (src/core/codec.h, docs/formats/commands.md): the
// payload of every journal record, decoded at recovery and replay.
//
// Properties checked: DecodeCommand returns a Status and never crashes or throws; a payload
// that decodes holds valid text, and its encoding (EncodeCommand) decodes again to a command
// with the same encoding.
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "fuzz/fuzz_util.h"
#include "src/base/assert.h"
#include "src/core/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ocx;
  const absl::StatusOr<core::CommandBody> command = core::DecodeCommand(fuzz::AsText(data, size));
  if (!command.ok()) {
    OCX_ASSERT(command.status().code() == absl::StatusCode::kDataLoss);
    return 0;
  }
  OCX_ASSERT(!core::CommandName(*command).empty());
  OCX_ASSERT_MSG(core::TextIsValid(*command), "a decoded command holds invalid UTF-8");
  const std::string encoded = core::EncodeCommand(*command);
  const absl::StatusOr<core::CommandBody> again = core::DecodeCommand(encoded);
  OCX_ASSERT_MSG(again.ok(), "an encoded command does not decode");
  OCX_ASSERT_MSG(core::EncodeCommand(*again) == encoded, "a command round trip changed it");
  return 0;
}
