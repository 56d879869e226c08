// Fuzz harness: snapshot loading, as recovery does it at start-up: the snapshot file
// (src/journal/snapshot.h, docs/formats/snapshot.md) and the exchange state in its body
// (core::Exchange::Restore, src/core/codec.cc, docs/formats/commands.md).
//
// Each input is used twice:
//   - as the bytes of the file "snapshot-00000000000000000042.snap" (one scratch file,
//     overwritten per input) for journal::ReadSnapshot: it returns a Status and never crashes;
//     a snapshot that verifies encodes back (EncodeSnapshot) to exactly the file's bytes, and
//     its body goes to Restore as below. Only inputs shorter than a header or starting like
//     the magic ("OCXS") go through the file: the others, mostly bodies, would only be
//     refused for their magic, and the file system work halved the executions per second;
//   - as a snapshot body for Exchange::Restore with the default configuration: it returns a
//     Status and never crashes or throws; a state that restores serializes to a body that
//     restores again to a state with the same serialization.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "fuzz/fuzz_util.h"
#include "src/base/assert.h"
#include "src/core/exchange.h"
#include "src/core/types.h"
#include "src/journal/snapshot.h"

namespace {

using namespace ocx;

constexpr uint64_t kSequence = 42;

const core::ExchangeConfig& Config() {
  static const core::ExchangeConfig config = core::ExchangeConfig::Default();
  return config;
}

void CheckRestore(std::string_view body) {
  const absl::StatusOr<std::unique_ptr<core::Exchange>> exchange =
      core::Exchange::Restore(Config(), body);
  if (!exchange.ok()) return;
  const std::string serialized = (*exchange)->Serialize();
  const absl::StatusOr<std::unique_ptr<core::Exchange>> again =
      core::Exchange::Restore(Config(), serialized);
  OCX_ASSERT_MSG(again.ok(), "a restored state's own snapshot does not restore");
  OCX_ASSERT_MSG((*again)->Serialize() == serialized, "a snapshot round trip changed the state");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes = fuzz::AsText(data, size);
  if (bytes.size() >= journal::kSnapshotHeaderBytes &&
      !bytes.starts_with(journal::kSnapshotMagic.substr(0, 4))) {
    CheckRestore(bytes);
    return 0;
  }
  static const std::string path = fuzz::ScratchDir() + "/" + journal::SnapshotFileName(kSequence);
  fuzz::WriteScratchFile(path, bytes);
  const absl::StatusOr<journal::Snapshot> snapshot = journal::ReadSnapshot(path);
  if (snapshot.ok()) {
    OCX_ASSERT(snapshot->sequence == kSequence);
    OCX_ASSERT_MSG(journal::EncodeSnapshot(snapshot->sequence, snapshot->body_version,
                                           snapshot->body) == bytes,
                   "a snapshot that verifies does not encode to its bytes");
    CheckRestore(snapshot->body);
  } else {
    OCX_ASSERT(snapshot.status().code() == absl::StatusCode::kDataLoss ||
               snapshot.status().code() == absl::StatusCode::kFailedPrecondition);
  }
  CheckRestore(bytes);
  return 0;
}
