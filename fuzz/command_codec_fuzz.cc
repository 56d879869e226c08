// Fuzz harness: the exchange command codec (src/core/codec.h, docs/formats/commands.md): the
// payload of every journal record, decoded at recovery and replay.
//
// Properties checked: DecodeCommand returns a Status and never crashes or throws; a payload
// that decodes holds valid text; its encoding (EncodeCommand) decodes again to a command with
// the same encoding; and the decoder keeps every value it read: each field of the encoding
// equals the payload's field of the same name (so no integer is narrowed or wrapped on the
// way in; fields the decoder ignores are not compared).
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "fuzz/fuzz_util.h"
#include "nlohmann/json.hpp"
#include "src/base/assert.h"
#include "src/core/codec.h"

namespace {

using Json = nlohmann::json;

// Whether two JSON integers are the same number. (nlohmann's == casts an unsigned to signed
// first, so 18446744073709551615 equals -1 there.)
bool SameInteger(const Json& a, const Json& b) {
  const bool a_negative = !a.is_number_unsigned() && a.get<int64_t>() < 0;
  const bool b_negative = !b.is_number_unsigned() && b.get<int64_t>() < 0;
  if (a_negative != b_negative) return false;
  return a_negative ? a.get<int64_t>() == b.get<int64_t>() : a.get<uint64_t>() == b.get<uint64_t>();
}

// Whether every field of `encoded` (recursively through objects and arrays) is in `payload`
// with an equal value.
bool Covers(const Json& payload, const Json& encoded) {
  if (encoded.is_number_integer()) {
    return payload.is_number_integer() && SameInteger(payload, encoded);
  }
  if (encoded.is_array()) {
    if (!payload.is_array() || payload.size() != encoded.size()) return false;
    for (size_t i = 0; i < encoded.size(); ++i) {
      if (!Covers(payload[i], encoded[i])) return false;
    }
    return true;
  }
  if (!encoded.is_object()) return payload == encoded;
  if (!payload.is_object()) return false;
  for (const auto& [key, value] : encoded.items()) {
    const auto it = payload.find(key);
    if (it == payload.end() || !Covers(*it, value)) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ocx;
  const std::string_view payload = fuzz::AsText(data, size);
  const absl::StatusOr<core::CommandBody> command = core::DecodeCommand(payload);
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
  OCX_ASSERT_MSG(Covers(Json::parse(payload, nullptr, /*allow_exceptions=*/false),
                        Json::parse(encoded, nullptr, /*allow_exceptions=*/false)),
                 "the decoder changed a value it read (narrowed or wrapped an integer?)");
  return 0;
}
