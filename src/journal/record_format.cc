#include "src/journal/record_format.h"

#include <cstdio>
#include <cstring>

#include "src/base/assert.h"
#include "src/journal/crc32c.h"
#include "src/journal/file_io.h"

namespace ocx::journal {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the journal's encoders copy integers as they are in memory: little-endian only");

namespace internal {
void PutU16(char* p, uint16_t v) { std::memcpy(p, &v, sizeof(v)); }
void PutU32(char* p, uint32_t v) { std::memcpy(p, &v, sizeof(v)); }
void PutU64(char* p, uint64_t v) { std::memcpy(p, &v, sizeof(v)); }
uint16_t GetU16(const char* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
uint32_t GetU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
uint64_t GetU64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
}  // namespace internal

using internal::GetU16;
using internal::GetU32;
using internal::GetU64;
using internal::PutU16;
using internal::PutU32;
using internal::PutU64;

namespace {
constexpr std::string_view kSegmentPrefix = "journal-";
constexpr std::string_view kSegmentSuffix = ".log";
}  // namespace

std::string SegmentFileName(uint64_t first_sequence) {
  return internal::SequenceFileName(kSegmentPrefix, first_sequence, kSegmentSuffix);
}

std::optional<uint64_t> ParseSegmentFileName(std::string_view name) {
  return internal::ParseSequenceFileName(name, kSegmentPrefix, kSegmentSuffix);
}

std::string EncodeSegmentHeader(uint64_t first_sequence) {
  std::string header(kSegmentHeaderBytes, '\0');
  char* p = header.data();
  std::memcpy(p, kSegmentMagic.data(), kSegmentMagic.size());
  PutU16(p + 8, kFormatVersion);
  PutU16(p + 10, static_cast<uint16_t>(kSegmentHeaderBytes));
  // Bytes 12..15 reserved, zero.
  PutU64(p + 16, first_sequence);
  // Bytes 24..27 reserved, zero.
  PutU32(p + 28, Crc32c(p, 28));
  return header;
}

void EncodeRecord(const RecordView& record, uint32_t batch_index, std::string* out) {
  OCX_ASSERT(record.payload.size() <= kMaxPayloadBytes);
  const size_t start = out->size();
  out->resize(start + EncodedRecordBytes(record.payload.size()));
  char* p = out->data() + start;
  PutU32(p, static_cast<uint32_t>(record.payload.size()));
  PutU64(p + 8, record.sequence);
  PutU64(p + 16, static_cast<uint64_t>(record.timestamp));
  PutU16(p + 24, record.payload_version);
  PutU16(p + 26, 0);  // Flags: none defined in version 1.
  PutU32(p + 28, batch_index);
  if (!record.payload.empty()) {
    std::memcpy(p + kRecordHeaderBytes, record.payload.data(), record.payload.size());
  }
  PutU32(p + 4, Crc32c(p + 8, kRecordHeaderBytes - 8 + record.payload.size()));
}

std::string_view DecodeStatusName(DecodeStatus status) {
  switch (status) {
    case DecodeStatus::kOk:
      return "ok";
    case DecodeStatus::kShortHeader:
      return "incomplete record header";
    case DecodeStatus::kBadLength:
      return "impossible record length";
    case DecodeStatus::kPastEnd:
      return "record extends past the end of the file";
    case DecodeStatus::kBadChecksum:
      return "CRC32C mismatch";
  }
  return "unknown";
}

DecodeStatus DecodeRecord(std::string_view bytes, DecodedRecord* out) {
  if (bytes.size() < kRecordHeaderBytes) return DecodeStatus::kShortHeader;
  const char* p = bytes.data();
  const uint32_t payload_bytes = GetU32(p);
  if (payload_bytes > kMaxPayloadBytes) return DecodeStatus::kBadLength;
  const size_t size = EncodedRecordBytes(payload_bytes);
  if (size > bytes.size()) return DecodeStatus::kPastEnd;
  if (GetU32(p + 4) != Crc32c(p + 8, size - 8)) return DecodeStatus::kBadChecksum;
  out->record.sequence = GetU64(p + 8);
  out->record.timestamp = static_cast<int64_t>(GetU64(p + 16));
  out->record.payload_version = GetU16(p + 24);
  out->flags = GetU16(p + 26);
  out->batch_index = GetU32(p + 28);
  out->record.payload = bytes.substr(kRecordHeaderBytes, payload_bytes);
  out->size = size;
  return DecodeStatus::kOk;
}

}  // namespace ocx::journal
