#include "src/journal/segment_scan.h"

#include <cstring>

#include "src/journal/crc32c.h"
#include "src/journal/record_format.h"
#include "src/journal/strings.h"

namespace ocx::journal {
namespace {

using internal::GetU16;
using internal::GetU32;
using internal::GetU64;

absl::Status Corruption(std::string_view path, uint64_t offset, std::string_view what) {
  return absl::DataLossError(internal::Cat("journal segment ", path, ": corruption at byte offset ",
                                           offset, ": ", what,
                                           ". Refusing to continue: restore this segment from a "
                                           "replica or backup"));
}

// Checks the header. Returns nullopt for a torn header (newest segment only).
absl::StatusOr<std::optional<uint64_t>> CheckHeader(std::string_view path, std::string_view data,
                                                    uint64_t name_first_sequence,
                                                    SegmentRole role) {
  const bool may_be_torn = role == SegmentRole::kNewest && data.size() <= kSegmentHeaderBytes;
  if (data.size() < kSegmentHeaderBytes) {
    if (may_be_torn) return std::nullopt;
    return Corruption(
        path, 0,
        internal::Cat("the file is ", data.size(), " bytes, shorter than a segment header"));
  }
  const char* p = data.data();
  if (std::memcmp(p, kSegmentMagic.data(), kSegmentMagic.size()) != 0) {
    if (may_be_torn) return std::nullopt;
    return Corruption(path, 0, "bad magic: not a journal segment");
  }
  const uint16_t version = GetU16(p + 8);
  if (version != kFormatVersion) {
    if (GetU32(p + 28) != Crc32c(p, 28) && may_be_torn) return std::nullopt;
    return absl::FailedPreconditionError(
        internal::Cat("journal segment ", path, ": format version ", version,
                      " is not supported (this build reads version ", kFormatVersion, ")"));
  }
  if (GetU32(p + 28) != Crc32c(p, 28)) {
    if (may_be_torn) return std::nullopt;
    return Corruption(path, 0, "segment header CRC32C mismatch");
  }
  if (GetU16(p + 10) != kSegmentHeaderBytes || GetU32(p + 12) != 0 || GetU32(p + 24) != 0) {
    return Corruption(path, 0, "segment header has an unexpected size or reserved field");
  }
  const uint64_t first_sequence = GetU64(p + 16);
  if (first_sequence != name_first_sequence || first_sequence == 0) {
    return Corruption(path, 16,
                      internal::Cat("the header's first sequence ", first_sequence,
                                    " does not match the file name's ", name_first_sequence));
  }
  return first_sequence;
}

// Looks for an intact record at `offset` that could follow sequence `expected` - 1, cheaply
// ruling out most offsets before computing a CRC.
bool IntactCandidateAt(std::string_view data, size_t offset, uint64_t expected,
                       uint64_t sequence_window, DecodedRecord* out) {
  if (data.size() - offset < kRecordHeaderBytes) return false;
  const char* p = data.data() + offset;
  const uint32_t payload_bytes = GetU32(p);
  if (payload_bytes > kMaxPayloadBytes ||
      EncodedRecordBytes(payload_bytes) > data.size() - offset) {
    return false;
  }
  const uint64_t sequence = GetU64(p + 8);
  if (sequence < expected || sequence - expected > sequence_window) return false;
  return DecodeRecord(data.substr(offset), out) == DecodeStatus::kOk;
}

}  // namespace

absl::StatusOr<SegmentScan> ScanSegment(std::string_view path, std::string_view data,
                                        uint64_t name_first_sequence, SegmentRole role) {
  SegmentScan scan;
  scan.first_sequence = name_first_sequence;
  scan.last_sequence = name_first_sequence - 1;
  absl::StatusOr<std::optional<uint64_t>> header =
      CheckHeader(path, data, name_first_sequence, role);
  if (!header.ok()) return header.status();
  if (!header->has_value()) {
    scan.header_torn = true;
    return scan;
  }

  size_t offset = kSegmentHeaderBytes;
  uint64_t expected = scan.first_sequence;
  int64_t previous_batch_index = -1;  // The first record of a segment starts a write.
  DecodedRecord decoded;
  while (offset < data.size()) {
    const DecodeStatus status = DecodeRecord(data.substr(offset), &decoded);
    if (status != DecodeStatus::kOk) {
      // Damage at `offset`. Decide: torn tail or corruption (see the header comment).
      const std::string reason =
          internal::Cat(DecodeStatusName(status), " where sequence ", expected, " was expected");
      if (role == SegmentRole::kSealed) {
        return Corruption(path, offset,
                          internal::Cat(reason,
                                        " in a sealed segment (a newer segment exists, "
                                        "so every byte of this one was synced)"));
      }
      const uint64_t damaged_bytes = data.size() - offset;
      const uint64_t window = damaged_bytes / kRecordHeaderBytes;
      uint64_t intact_after = 0;
      for (size_t probe = offset + 1; probe + kRecordHeaderBytes <= data.size();) {
        DecodedRecord found;
        if (!IntactCandidateAt(data, probe, expected, window, &found)) {
          ++probe;
          continue;
        }
        const uint64_t write_start = found.record.sequence >= found.batch_index
                                         ? found.record.sequence - found.batch_index
                                         : 0;
        if (write_start > expected) {
          return Corruption(
              path, offset,
              internal::Cat(reason,
                            ", yet an intact record written by a later write follows "
                            "(sequence ",
                            found.record.sequence, " at byte offset ", probe,
                            "): the damaged record was synced before that write began, so "
                            "this is not a torn tail"));
        }
        ++intact_after;
        probe += found.size;
      }
      if (damaged_bytes > kMaxUnsyncedBytes) {
        return Corruption(path, offset,
                          internal::Cat(reason, ", and the damaged tail is ", damaged_bytes,
                                        " bytes, longer than the largest unsynced write (",
                                        kMaxUnsyncedBytes, " bytes), so it is not a torn tail"));
      }
      TornTail torn;
      torn.offset = offset;
      torn.bytes = damaged_bytes;
      torn.first_sequence = expected;
      torn.intact_records = intact_after;
      torn.reason = reason;
      scan.torn = std::move(torn);
      break;
    }
    // The record is whole as written: anything wrong with it now is corruption.
    if (decoded.record.sequence != expected) {
      return Corruption(path, offset,
                        internal::Cat("broken sequence: expected ", expected, ", found ",
                                      decoded.record.sequence, " in an intact record"));
    }
    if (decoded.flags != 0) {
      return Corruption(
          path, offset,
          internal::Cat("record with sequence ", expected, " has unknown flags ", decoded.flags));
    }
    if (decoded.batch_index != 0 &&
        static_cast<int64_t>(decoded.batch_index) != previous_batch_index + 1) {
      return Corruption(
          path, offset,
          internal::Cat("record with sequence ", expected, " has batch index ", decoded.batch_index,
                        " after one with ", previous_batch_index));
    }
    previous_batch_index = decoded.batch_index;
    ++expected;
    offset += decoded.size;
  }
  scan.records = expected - scan.first_sequence;
  scan.last_sequence = expected - 1;
  scan.valid_bytes = offset;
  return scan;
}

}  // namespace ocx::journal
