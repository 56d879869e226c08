// CRC32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum of journal records,
// segment headers and snapshots (docs/formats/journal.md, docs/formats/snapshot.md).
//
// Two implementations that must agree bit for bit: a portable table-driven one
// (slicing-by-8) and one on the SSE4.2 `crc32` instruction. The second is chosen once, at
// first use, when the CPU reports SSE4.2 (`__builtin_cpu_supports("sse4.2")`).
// Thread-safe: pure functions over read-only tables.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ocx::journal {

// Extends `crc` (the CRC32C of some earlier bytes, or 0 for none) over `n` more bytes:
// Crc32cExtend(Crc32c(a), b) == Crc32c(a + b).
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);

inline uint32_t Crc32c(const void* data, size_t n) { return Crc32cExtend(0, data, n); }
inline uint32_t Crc32c(std::string_view bytes) { return Crc32c(bytes.data(), bytes.size()); }

namespace internal {
// The two implementations, exposed so that tests can compare them.
uint32_t Crc32cExtendPortable(uint32_t crc, const void* data, size_t n);
// Only callable when HaveSse42() is true.
uint32_t Crc32cExtendSse42(uint32_t crc, const void* data, size_t n);
bool HaveSse42();
}  // namespace internal

}  // namespace ocx::journal
