// BlobStore: content-addressed blobs on disk (docs/formats/blobs.md). Consumers upload job
// inputs and agents upload outputs; a blob is named by the SHA-256 of its bytes, so the
// same content is stored once and a name can never point at different bytes.
//
// Layout: dir/<first 2 hex digits>/<64 hex digits>, one file per blob, and dir/tmp/ for
// writes in progress. A write
// goes to a uniquely named file in tmp/, is fsync'ed, renamed into place and the directory
// fsync'ed: a blob is there whole or not at all, even across a crash. Leftover tmp files (from a
// crash mid-write) are removed by Open.
//
// Thread-safe: no state is shared between calls except the directory, and every write has
// its own temporary file, so concurrent Puts (of the same blob too) are fine: the second
// rename replaces identical bytes. One process at a time may use a directory (the server
// holds the data directory), since Open empties tmp/.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ocx::api {

struct BlobInfo {
  std::string sha256;  // 64 lowercase hex digits.
  uint64_t size = 0;
};

class BlobStore {
 public:
  // Creates `dir` (and its parents) and dir/tmp/ if needed, and removes what is left in
  // dir/tmp/. `blob_bytes_max` is the named bound on one blob
  // (ServerConfig::blob_bytes_max).
  static absl::StatusOr<std::unique_ptr<BlobStore>> Open(std::string dir, uint64_t blob_bytes_max);

  BlobStore(const BlobStore&) = delete;
  BlobStore& operator=(const BlobStore&) = delete;

  // Stores `data` durably and returns its digest and size. If `expected_sha256` is given and
  // is not a valid digest: InvalidArgument "invalid_digest: ..."; if the content's digest
  // differs from it: InvalidArgument "digest_mismatch: ..." and nothing is kept. Larger than
  // blob_bytes_max: ResourceExhausted. Storing a blob that exists already is OK and writes
  // nothing (idempotent). An I/O failure: the errno's status, nothing kept.
  absl::StatusOr<BlobInfo> Put(std::string_view data,
                               std::optional<std::string_view> expected_sha256);
  // The blob's bytes. NotFound if absent; InvalidArgument if `sha256` is not a valid digest.
  absl::StatusOr<std::string> Get(std::string_view sha256) const;
  // The blob's size in bytes, without reading it (for HEAD and Content-Length).
  absl::StatusOr<uint64_t> Size(std::string_view sha256) const;

  // Whether `text` is 64 lowercase hex digits (which also rules out any path trickery).
  static bool IsValidDigest(std::string_view text);
  // SHA-256 of `data` as 64 lowercase hex digits (libsodium's crypto_hash_sha256).
  static std::string Sha256Hex(std::string_view data);

  const std::string& dir() const { return dir_; }
  uint64_t blob_bytes_max() const { return blob_bytes_max_; }
  // Where the blob with this (valid) digest lives or would live: dir/<2 hex>/<64 hex>.
  std::string PathOf(std::string_view sha256) const;

 private:
  static constexpr size_t kShardDirs = 256;  // dir/00 .. dir/ff

  BlobStore(std::string dir, uint64_t blob_bytes_max);
  // Makes dir/<2 hex> if needed and, the first time in this process, syncs `dir` so that the
  // directory's entry is durable before any blob in it is acknowledged.
  absl::Status EnsureShardDirectory(const std::string& shard_dir, std::string_view sha256);

  const std::string dir_;
  const std::string tmp_dir_;
  const uint64_t blob_bytes_max_;
  // Shard directories known to exist durably. Set once, never cleared; lock-free.
  std::atomic<bool> shard_durable_[kShardDirs] = {};
};

}  // namespace ocx::api
