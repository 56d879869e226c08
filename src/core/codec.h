// JSON encodings of the core: commands (the journal's payload, format in
// docs/formats/journal.md) and whole-state snapshots (Exchange::Serialize/Restore).
// Canonical: object keys sorted, no floats, so equal values give equal bytes.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "src/core/commands.h"

namespace ocx::core {

inline constexpr uint16_t kCommandPayloadVersion = 1;
inline constexpr uint16_t kSnapshotVersion = 1;

// Requires TextIsValid(command).
std::string EncodeCommand(const CommandBody& command);
absl::StatusOr<CommandBody> DecodeCommand(std::string_view payload);

// Whether every string in the command is valid UTF-8, as JSON needs. The sequencer refuses
// a command that is not before applying it: the journal must be able to decode every record.
bool TextIsValid(const CommandBody& command);

// Stable names used in the encodings and the API.
std::string_view CommandName(const CommandBody& command);

}  // namespace ocx::core
