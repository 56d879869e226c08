// BlobStore: content-addressed blobs on disk (docs/formats/blobs.md), each with the accounts
// that uploaded it, per-account quotas, a free-space watermark and garbage collection.
// Consumers upload job inputs and agents upload outputs; a blob is named by the SHA-256 of
// its bytes, so the same content is stored once and a name can never point at other bytes.
//
// Layout: dir/<first 2 hex digits>/<64 hex digits>, one file per blob; dir/tmp/ for writes in
// progress and dir/uploads/ for request bodies the server streams in; dir/index.sqlite for who
// uploaded what (owners), sizes and times. A write goes to a uniquely named file, is fsync'ed,
// renamed into place and the directory fsync'ed: a blob is there whole or not at all, even
// across a crash; its owner row is written after (a crash in between leaves a blob without an
// owner, which Open records as such: only grants and operators read it, and it is collected
// after the grace period unless a task names it). Leftover temporary files are removed by Open.
//
// Limits: one blob is at most blob_bytes_max; the blobs an account uploaded total at most
// quota_bytes_per_account (a blob uploaded by two accounts counts for both); nothing is stored
// while the file system would keep less than disk_free_min_bytes free (so uploads can never
// take the journal's disk). Garbage: a blob is deleted once it is older than grace_micros,
// unused (not downloaded) for as long, and not referenced (the caller's predicate: a task that
// still needs it, asked of the query store).
//
// Thread-safe: every method may be called from any thread (one mutex guards the index and the
// quota figures; file writes happen outside it, each in its own temporary file). One process at
// a time may use a directory (the server holds the data directory), since Open empties tmp/.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/base/unique_fd.h"

namespace ocx::store::sqlite {
class Db;
}

namespace ocx::api {

struct BlobInfo {
  std::string sha256;  // 64 lowercase hex digits.
  uint64_t size = 0;
};

struct BlobStoreOptions {
  std::string dir;
  uint64_t blob_bytes_max = 64 << 20;
  uint64_t quota_bytes_per_account = uint64_t{1} << 30;
  uint64_t disk_free_min_bytes = 128 << 20;
  int64_t grace_micros = 24LL * 3600 * 1'000'000;
};

struct BlobCollection {
  size_t examined = 0;
  size_t deleted = 0;
  uint64_t bytes_freed = 0;
};

class BlobStore {
 public:
  // Creates the directories and the index if needed, removes what is left in tmp/ and
  // uploads/, and records blob files the index does not know (ownerless). `now_micros` stamps
  // those.
  static absl::StatusOr<std::unique_ptr<BlobStore>> Open(BlobStoreOptions options,
                                                         int64_t now_micros);
  // The old signature, for tools and tests: default limits.
  static absl::StatusOr<std::unique_ptr<BlobStore>> Open(std::string dir,
                                                         uint64_t blob_bytes_max);
  ~BlobStore();
  BlobStore(const BlobStore&) = delete;
  BlobStore& operator=(const BlobStore&) = delete;

  // Whether `owner` may add `bytes` more now: ResourceExhausted past its quota, Unavailable
  // below the free-space watermark, OutOfRange past the size of one blob.
  absl::Status CheckRoom(uint64_t owner, uint64_t bytes) const;

  // Stores `data` durably for `owner`. If `expected_sha256` is given and differs from the
  // content's digest: InvalidArgument "digest_mismatch: ..." and nothing is kept. Errors as
  // CheckRoom; an I/O failure: the errno's status, nothing kept. Storing a blob that exists
  // already is OK (idempotent), and makes `owner` one of its owners.
  absl::StatusOr<BlobInfo> Put(std::string_view data,
                               std::optional<std::string_view> expected_sha256, uint64_t owner,
                               int64_t now_micros);
  // The same for a file the server streamed into upload_dir(), whose size and digest it
  // computed as the bytes came: moved into place (or removed when the blob existed).
  absl::StatusOr<BlobInfo> Adopt(const std::string& path, uint64_t size, const std::string& sha256,
                                 uint64_t owner, std::optional<std::string_view> expected_sha256,
                                 int64_t now_micros);

  // The blob's file, open for reading. NotFound if absent.
  absl::StatusOr<base::UniqueFd> OpenBlob(std::string_view sha256) const;
  // The blob's bytes (tests, small blobs). NotFound if absent.
  absl::StatusOr<std::string> Get(std::string_view sha256) const;
  // The blob's size in bytes, without reading it.
  absl::StatusOr<uint64_t> Size(std::string_view sha256) const;
  bool IsOwner(uint64_t account, std::string_view sha256) const;
  // Records a download (the blob counts as used then, for garbage collection).
  void Touch(std::string_view sha256, int64_t now_micros);
  // Bytes of the blobs `account` uploaded.
  uint64_t UsageOf(uint64_t account) const;

  // Deletes up to `max` blobs that are past the grace period, unused as long, and not
  // `referenced`.
  absl::StatusOr<BlobCollection> CollectGarbage(
      int64_t now_micros, const std::function<absl::StatusOr<bool>(const std::string&)>& referenced,
      size_t max = 1000);

  // Whether `text` is 64 lowercase hex digits (which also rules out any path trickery).
  static bool IsValidDigest(std::string_view text);
  // SHA-256 of `data` as 64 lowercase hex digits.
  static std::string Sha256Hex(std::string_view data);

  const std::string& dir() const { return options_.dir; }
  // Where the server streams request bodies of uploads (same file system as the blobs).
  const std::string& upload_dir() const { return upload_dir_; }
  uint64_t blob_bytes_max() const { return options_.blob_bytes_max; }
  // Where the blob with this (valid) digest lives or would live: dir/<2 hex>/<64 hex>.
  std::string PathOf(std::string_view sha256) const;

 private:
  static constexpr size_t kShardDirs = 256;  // dir/00 .. dir/ff

  explicit BlobStore(BlobStoreOptions options);
  absl::Status OpenIndex(int64_t now_micros);
  // Makes dir/<2 hex> if needed and, the first time in this process, syncs `dir` so that the
  // directory's entry is durable before any blob in it is acknowledged.
  absl::Status EnsureShardDirectory(const std::string& shard_dir, std::string_view sha256);
  // Moves the synced file at `path` into place as blob `sha256` (or drops it when the blob is
  // there already), then records `owner`. Quota checked under the lock first.
  absl::StatusOr<BlobInfo> Install(const std::string& path, uint64_t size,
                                   const std::string& sha256, uint64_t owner, int64_t now_micros);
  absl::Status FreeSpaceFor(uint64_t bytes) const;

  const BlobStoreOptions options_;
  const std::string tmp_dir_;
  const std::string upload_dir_;
  // Shard directories known to exist durably. Set once, never cleared; lock-free.
  std::atomic<bool> shard_durable_[kShardDirs] = {};

  mutable std::mutex mu_;
  std::unique_ptr<store::sqlite::Db> index_;   // Guarded by mu_.
  std::map<uint64_t, uint64_t> usage_;         // Bytes per owner. Guarded by mu_.
};

}  // namespace ocx::api
