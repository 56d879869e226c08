// The journal's on-disk format, version 1 (specified byte by byte in docs/formats/journal.md):
// segment files named for their first sequence number, each a 32-byte header followed by
// records of a 32-byte header and opaque payload bytes. Little-endian, fixed layout.
//
// This file holds the constants, the encoders and the one-record decoder; segment_scan.h
// walks a whole segment and decides what is a torn tail and what is corruption.
// Thread-safe: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ocx::journal {

// One record as appended and as read back. `payload` is borrowed: the caller keeps it alive
// for the duration of the call (Append), or the reader does until its next Next() call.
struct RecordView {
  uint64_t sequence = 0;  // >= 1; each record's is its predecessor's plus one.
  int64_t timestamp = 0;  // In the caller's unit (the sequencer's clock).
  uint16_t payload_version = 0;
  std::string_view payload;  // Opaque: the core's serialized command.
};

// Segment header: magic, format version, header size, first sequence, CRC32C.
inline constexpr std::string_view kSegmentMagic{"OCXJRNL\n", 8};
inline constexpr uint16_t kFormatVersion = 1;
inline constexpr size_t kSegmentHeaderBytes = 32;

// Record: length, CRC32C, sequence, timestamp, payload version, flags, batch index, payload.
inline constexpr size_t kRecordHeaderBytes = 32;
// Named bound on one record's payload; Append refuses larger ones.
inline constexpr size_t kMaxPayloadBytes = size_t{1} << 20;
inline constexpr size_t kMaxRecordBytes = kRecordHeaderBytes + kMaxPayloadBytes;

// A writer syncs after every write() of at most this many bytes, and starts the next write
// only after that sync. So when the machine stops, at most the last kMaxUnsyncedBytes of the
// last segment can be missing or damaged; recovery treats a longer damaged tail as
// corruption. Part of the format: a writer must never exceed it.
inline constexpr size_t kMaxUnsyncedBytes = size_t{4} << 20;

// Named bound on one segment file: the largest configurable roll size plus one write.
// Readers refuse bigger files instead of loading them.
inline constexpr uint64_t kMaxSegmentRollBytes = uint64_t{1} << 30;
inline constexpr uint64_t kMaxSegmentFileBytes = kMaxSegmentRollBytes + kMaxUnsyncedBytes;

inline constexpr size_t EncodedRecordBytes(size_t payload_bytes) {
  return kRecordHeaderBytes + payload_bytes;
}

// "journal-00000000000000000001.log": the first sequence, 20 digits, so that names sort.
std::string SegmentFileName(uint64_t first_sequence);
// The first sequence of a segment file name, or nullopt when `name` is not one.
std::optional<uint64_t> ParseSegmentFileName(std::string_view name);

// The 32-byte header of a segment whose first record has `first_sequence`.
std::string EncodeSegmentHeader(uint64_t first_sequence);

// Appends the encoding of `record` to *out. `batch_index` is the record's position within
// the write() that carries it (0 for the first record of a write); recovery uses it to tell
// a torn write from corruption. Asserts that the payload is within kMaxPayloadBytes.
void EncodeRecord(const RecordView& record, uint32_t batch_index, std::string* out);

enum class DecodeStatus {
  kOk,
  kShortHeader,  // Fewer than kRecordHeaderBytes bytes left.
  kBadLength,    // The length field exceeds kMaxPayloadBytes.
  kPastEnd,      // The record would extend past the end of the bytes given.
  kBadChecksum,  // CRC32C mismatch.
};
std::string_view DecodeStatusName(DecodeStatus status);

struct DecodedRecord {
  RecordView record;   // Points into the bytes given to DecodeRecord.
  uint16_t flags = 0;  // Zero in version 1.
  uint32_t batch_index = 0;
  size_t size = 0;  // Header plus payload.
};

// Decodes the record at the start of `bytes` (which may run on past it) and verifies its
// CRC. Checks nothing about sequences: that is the scanner's job.
DecodeStatus DecodeRecord(std::string_view bytes, DecodedRecord* out);

// Little-endian field access, shared with the snapshot format.
namespace internal {
void PutU16(char* p, uint16_t v);
void PutU32(char* p, uint32_t v);
void PutU64(char* p, uint64_t v);
uint16_t GetU16(const char* p);
uint32_t GetU32(const char* p);
uint64_t GetU64(const char* p);
}  // namespace internal

}  // namespace ocx::journal
