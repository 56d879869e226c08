// Helpers shared by the journal tests: a temporary directory removed afterwards, file
// surgery (truncate, flip a bit, zero a range) and deterministic payloads.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "src/base/testing/temp_dir.h"
#include "src/journal/file_journal_reader.h"
#include "src/journal/record_format.h"

namespace ocx::journal::testing {

// A fresh directory under the test temp dir, removed on destruction.
class TempDir : public base::testing::TempDir {
 public:
  TempDir() : base::testing::TempDir("ocx_journal_test") {}
};

inline std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Replaces the content of `path` with `bytes`. Writes in place and then sets the size,
// rather than truncating to zero first: ext4 flushes a file that was truncated to zero and
// rewritten when it is closed (auto_da_alloc), which would make byte-by-byte tests slow.
inline void WriteFileBytes(const std::string& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << path;
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n =
        ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    ASSERT_GT(n, 0) << path;
    done += static_cast<size_t>(n);
  }
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(bytes.size())), 0) << path;
  ::close(fd);
}

inline uint64_t FileSize(const std::string& path) {
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) return 0;
  return static_cast<uint64_t>(info.st_size);
}

inline void TruncateFileTo(const std::string& path, uint64_t size) {
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(size)), 0) << path;
}

// Flips one bit in place.
inline void FlipBit(const std::string& path, uint64_t offset, int bit) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0) << path;
  char byte = 0;
  ASSERT_EQ(::pread(fd, &byte, 1, static_cast<off_t>(offset)), 1) << path << " @" << offset;
  byte = static_cast<char>(byte ^ (1 << bit));
  ASSERT_EQ(::pwrite(fd, &byte, 1, static_cast<off_t>(offset)), 1) << path << " @" << offset;
  ::close(fd);
}

inline void CopyDirectory(const std::string& from, const std::string& to) {
  std::filesystem::remove_all(to);
  std::filesystem::copy(from, to);
}

// A deterministic payload for `sequence`: its length and every byte follow from it, so a
// reader can check a record is intact without keeping what was written.
inline std::string PayloadFor(uint64_t sequence) {
  std::string payload(8 + sequence % 57, '\0');
  for (size_t i = 0; i < payload.size(); ++i) {
    payload[i] = static_cast<char>((sequence * 131 + i * 7 + (sequence >> 8)) & 0xFF);
  }
  return payload;
}

inline RecordView RecordFor(uint64_t sequence, const std::string& payload) {
  RecordView record;
  record.sequence = sequence;
  record.timestamp = static_cast<int64_t>(sequence) * 1000 - 7;
  record.payload_version = static_cast<uint16_t>(sequence % 3 + 1);
  record.payload = payload;
  return record;
}

struct OwnedRecord {
  uint64_t sequence;
  int64_t timestamp;
  uint16_t payload_version;
  std::string payload;
};

// Every record from `from_sequence` on, or the reader's error.
inline absl::StatusOr<std::vector<OwnedRecord>> ReadAll(const std::string& dir,
                                                        uint64_t from_sequence = 0) {
  absl::StatusOr<std::unique_ptr<FileJournalReader>> reader =
      FileJournalReader::Open(dir, from_sequence);
  if (!reader.ok()) return reader.status();
  std::vector<OwnedRecord> records;
  RecordView record;
  for (;;) {
    absl::StatusOr<bool> more = (*reader)->Next(&record);
    if (!more.ok()) return more.status();
    if (!*more) break;
    records.push_back(
        {record.sequence, record.timestamp, record.payload_version, std::string(record.payload)});
  }
  return records;
}

// Checks that `records` are exactly RecordFor(first..first+n-1, PayloadFor(...)).
inline void ExpectRecordsFor(const std::vector<OwnedRecord>& records, uint64_t first) {
  for (size_t i = 0; i < records.size(); ++i) {
    const uint64_t sequence = first + i;
    const std::string payload = PayloadFor(sequence);
    const RecordView want = RecordFor(sequence, payload);
    ASSERT_EQ(records[i].sequence, sequence);
    ASSERT_EQ(records[i].timestamp, want.timestamp) << "sequence " << sequence;
    ASSERT_EQ(records[i].payload_version, want.payload_version) << "sequence " << sequence;
    ASSERT_EQ(records[i].payload, payload) << "sequence " << sequence;
  }
}

}  // namespace ocx::journal::testing
