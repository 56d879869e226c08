// Fuzz harness: one journal record (src/journal/record_format.h, docs/formats/journal.md),
// decoded from bytes read off disk.
//
// Properties checked: DecodeRecord never reads outside the bytes given and never crashes;
// a record that decodes lies within them, and encoding it again (EncodeRecord with its batch
// index) gives exactly the bytes it was decoded from (flags, which version 1 never writes,
// aside: with flags set, only the flags and the CRC differ).
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz/fuzz_util.h"
#include "src/base/assert.h"
#include "src/journal/record_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ocx::journal;
  const std::string_view bytes = ocx::fuzz::AsText(data, size);
  DecodedRecord decoded;
  const DecodeStatus status = DecodeRecord(bytes, &decoded);
  OCX_ASSERT(!DecodeStatusName(status).empty());
  if (status != DecodeStatus::kOk) return 0;
  OCX_ASSERT(decoded.size == EncodedRecordBytes(decoded.record.payload.size()));
  OCX_ASSERT(decoded.size <= bytes.size() && decoded.size <= kMaxRecordBytes);
  OCX_ASSERT(decoded.record.payload.data() == bytes.data() + kRecordHeaderBytes);

  std::string encoded;
  EncodeRecord(decoded.record, decoded.batch_index, &encoded);
  OCX_ASSERT(encoded.size() == decoded.size);
  const std::string_view original = bytes.substr(0, decoded.size);
  if (decoded.flags == 0) {
    OCX_ASSERT_MSG(encoded == original, "a decoded record does not encode to its bytes");
  } else {
    // Bytes 4..7 are the CRC, 26..27 the flags.
    OCX_ASSERT(encoded.compare(0, 4, original, 0, 4) == 0);
    OCX_ASSERT(encoded.compare(8, 18, original, 8, 18) == 0);
    OCX_ASSERT(encoded.compare(28, std::string::npos, original, 28) == 0);
  }
  DecodedRecord again;
  OCX_ASSERT(DecodeRecord(encoded, &again) == DecodeStatus::kOk);
  OCX_ASSERT(again.record.sequence == decoded.record.sequence);
  OCX_ASSERT(again.record.timestamp == decoded.record.timestamp);
  OCX_ASSERT(again.record.payload_version == decoded.record.payload_version);
  OCX_ASSERT(again.record.payload == decoded.record.payload);
  OCX_ASSERT(again.batch_index == decoded.batch_index && again.flags == 0);
  return 0;
}
