// The blobs a task's documents name (docs/formats/task.md), as the store records them
// (docs/formats/store.md, `task_blobs`): a task spec's inputs[].sha256; a task result's
// stdout.sha256, stderr.sha256 and outputs[].sha256. The store answers from them who may read
// a blob and which blobs are still needed (Store::BlobGranted, Store::BlobReferenced).
//
// The documents come from the journal, which the core fills with whatever it was given (it
// bounds their size but does not parse them), and a hand-made journal may hold anything. So
// they are read with ParseJsonStrict and type checks only, and never throw:
// - a document that is not JSON, not an object, or whose array (`inputs`, `outputs`) holds
//   more entries than the format allows names nothing;
// - a field of the wrong type, or an entry without a digest of 64 lowercase hex digits, is
//   skipped, and the rest of the document still counts.
// Thread-safe (pure functions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ocx::store {

// Named bounds on the blobs one document names: the task format's own limits
// (docs/formats/task.md), enforced again here since a journal's documents may be anything.
inline constexpr size_t kTaskSpecInputsMax = 10'000;
inline constexpr size_t kTaskResultOutputsMax = 1'000;

// What a blob is to the task that names it. Stored by name (BlobRoleName).
enum class BlobRole : uint8_t { kInput, kStdout, kStderr, kOutput };
// "input", "stdout", "stderr", "output" (part of the store's format: never change them).
std::string_view BlobRoleName(BlobRole role);

struct NamedBlob {
  std::string sha256;  // 64 lowercase hex digits.
  BlobRole role = BlobRole::kInput;
  bool operator==(const NamedBlob&) const = default;
};

// inputs[].sha256 of a task spec, in document order (a digest named twice comes twice).
// At most kTaskSpecInputsMax.
std::vector<NamedBlob> BlobsOfTaskSpec(std::string_view spec);
// stdout.sha256, stderr.sha256, then outputs[].sha256 of a task result, in that order.
// At most kTaskResultOutputsMax + 2. An empty result (a lost task) names nothing.
std::vector<NamedBlob> BlobsOfTaskResult(std::string_view result);

}  // namespace ocx::store
