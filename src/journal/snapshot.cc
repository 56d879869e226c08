#include "src/journal/snapshot.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "src/base/status.h"
#include "src/journal/crc32c.h"
#include "src/journal/file_io.h"
#include "src/journal/record_format.h"
#include "src/journal/strings.h"

namespace ocx::journal {
namespace {

using internal::GetU16;
using internal::GetU32;
using internal::GetU64;
using internal::PutU16;
using internal::PutU32;
using internal::PutU64;

constexpr std::string_view kPrefix = "snapshot-";
constexpr std::string_view kSuffix = ".snap";

absl::Status Invalid(std::string_view path, std::string_view what) {
  return absl::DataLossError(internal::Cat("snapshot ", path, ": ", what));
}

}  // namespace

std::string SnapshotFileName(uint64_t sequence) {
  return internal::SequenceFileName(kPrefix, sequence, kSuffix);
}

std::optional<uint64_t> ParseSnapshotFileName(std::string_view name) {
  return internal::ParseSequenceFileName(name, kPrefix, kSuffix);
}

std::string EncodeSnapshot(uint64_t sequence, uint16_t body_version, std::string_view body) {
  std::string bytes(kSnapshotHeaderBytes, '\0');
  char* p = bytes.data();
  std::memcpy(p, kSnapshotMagic.data(), kSnapshotMagic.size());
  PutU16(p + 8, kSnapshotFormatVersion);
  PutU16(p + 10, static_cast<uint16_t>(kSnapshotHeaderBytes));
  PutU16(p + 12, body_version);
  // Bytes 14..15 reserved, zero.
  PutU64(p + 16, sequence);
  PutU64(p + 24, body.size());
  PutU32(p + 32, Crc32c(body));
  PutU32(p + 36, Crc32c(p, 36));
  bytes.append(body);
  return bytes;
}

absl::StatusOr<std::string> WriteSnapshot(const std::string& dir, uint64_t sequence,
                                          uint16_t body_version, std::string_view body) {
  OCX_RETURN_IF_ERROR(internal::EnsureDirectory(dir));
  const std::string path = internal::JoinPath(dir, SnapshotFileName(sequence));
  const std::string temporary = path + ".tmp";
  {
    OCX_ASSIGN_OR_RETURN(internal::UniqueFd fd,
                         internal::OpenFile(temporary, O_WRONLY | O_CREAT | O_TRUNC));
    OCX_RETURN_IF_ERROR(
        internal::WriteFully(fd.get(), EncodeSnapshot(sequence, body_version, body), temporary));
    OCX_RETURN_IF_ERROR(internal::SyncFile(fd.get(), temporary));
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    return internal::ErrnoError(errno, "rename to " + path, temporary);
  }
  OCX_RETURN_IF_ERROR(internal::SyncDirectory(dir));
  return path;
}

absl::StatusOr<Snapshot> ReadSnapshot(const std::string& path) {
  OCX_ASSIGN_OR_RETURN(std::string data,
                       internal::ReadWholeFile(path, kSnapshotHeaderBytes + kMaxSnapshotBodyBytes));
  if (data.size() < kSnapshotHeaderBytes) {
    return Invalid(
        path, internal::Cat("the file is ", data.size(), " bytes, shorter than a snapshot header"));
  }
  const char* p = data.data();
  if (std::memcmp(p, kSnapshotMagic.data(), kSnapshotMagic.size()) != 0) {
    return Invalid(path, "bad magic: not a snapshot file");
  }
  if (GetU16(p + 8) != kSnapshotFormatVersion) {
    return absl::FailedPreconditionError(
        internal::Cat("snapshot ", path, ": format version ", GetU16(p + 8),
                      " is not supported (this build reads version ", kSnapshotFormatVersion, ")"));
  }
  if (GetU32(p + 36) != Crc32c(p, 36)) return Invalid(path, "header CRC32C mismatch");
  if (GetU16(p + 10) != kSnapshotHeaderBytes || GetU16(p + 14) != 0) {
    return Invalid(path, "unexpected header size or reserved field");
  }
  Snapshot snapshot;
  snapshot.body_version = GetU16(p + 12);
  snapshot.sequence = GetU64(p + 16);
  const uint64_t body_bytes = GetU64(p + 24);
  if (body_bytes != data.size() - kSnapshotHeaderBytes) {
    return Invalid(path,
                   internal::Cat("the header says the body is ", body_bytes,
                                 " bytes but the file holds ", data.size() - kSnapshotHeaderBytes));
  }
  const std::string_view body = std::string_view(data).substr(kSnapshotHeaderBytes);
  if (GetU32(p + 32) != Crc32c(body)) return Invalid(path, "body CRC32C mismatch");
  const std::optional<uint64_t> named = ParseSnapshotFileName(std::string_view(path).substr(
      path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1));
  if (named.has_value() && *named != snapshot.sequence) {
    return Invalid(path, internal::Cat("the header's sequence ", snapshot.sequence,
                                       " does not match the file name's ", *named));
  }
  data.erase(0, kSnapshotHeaderBytes);  // Reuse the buffer for the body.
  snapshot.body = std::move(data);
  return snapshot;
}

absl::StatusOr<LatestSnapshot> FindLatestSnapshot(const std::string& dir) {
  LatestSnapshot latest;
  struct stat info;
  if (::stat(dir.c_str(), &info) != 0 && errno == ENOENT) return latest;
  OCX_ASSIGN_OR_RETURN(std::vector<std::string> names, internal::ListDirectory(dir));
  std::vector<uint64_t> sequences;
  for (const std::string& name : names) {
    if (std::optional<uint64_t> sequence = ParseSnapshotFileName(name)) {
      sequences.push_back(*sequence);
    }
  }
  std::sort(sequences.rbegin(), sequences.rend());
  for (uint64_t sequence : sequences) {
    const std::string path = internal::JoinPath(dir, SnapshotFileName(sequence));
    absl::StatusOr<Snapshot> snapshot = ReadSnapshot(path);
    if (snapshot.ok()) {
      latest.snapshot = std::move(*snapshot);
      latest.path = path;
      return latest;
    }
    latest.rejected.push_back(std::string(snapshot.status().message()));
  }
  return latest;
}

}  // namespace ocx::journal
