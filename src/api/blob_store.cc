#include "src/api/blob_store.h"

#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

#include "src/base/assert.h"
#include "src/base/status.h"
#include "src/base/unique_fd.h"

namespace ocx::api {
namespace {

constexpr size_t kDigestHexChars = 64;
constexpr std::string_view kTmpDirName = "tmp";

absl::Status ErrnoError(int error_number, std::string_view operation, std::string_view path) {
  return absl::ErrnoToStatus(error_number, std::string(operation) + " " + std::string(path));
}

// sodium_init() is idempotent and thread-safe; doing it once here keeps it off every call.
void EnsureSodium() {
  static const int result = sodium_init();
  OCX_ASSERT_MSG(result >= 0, "sodium_init failed");
}

absl::Status SyncDirectory(const std::string& dir) {
  base::UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(errno, "open", dir);
  if (::fsync(fd.get()) != 0) return ErrnoError(errno, "fsync", dir);
  return absl::OkStatus();
}

// Creates `dir` (one level) unless it exists; true when created (the caller syncs the
// parent then).
absl::StatusOr<bool> MakeDirectory(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) == 0) return true;
  if (errno != EEXIST) return ErrnoError(errno, "mkdir", dir);
  struct stat info;
  if (::stat(dir.c_str(), &info) != 0) return ErrnoError(errno, "stat", dir);
  if (!S_ISDIR(info.st_mode)) {
    return absl::FailedPreconditionError(dir + " exists and is not a directory");
  }
  return false;
}

absl::Status WriteFully(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "write", path);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// The value of a lowercase hex digit (the digest was validated).
size_t HexValue(char c) {
  return c <= '9' ? static_cast<size_t>(c - '0') : static_cast<size_t>(c - 'a' + 10);
}

absl::Status InvalidDigest(std::string_view text) {
  constexpr size_t kShownMax = 80;  // Do not echo a huge path segment into logs.
  return absl::InvalidArgumentError("invalid_digest: \"" + std::string(text.substr(0, kShownMax)) +
                                    (text.size() > kShownMax ? "...\"" : "\"") +
                                    " is not 64 lowercase hex digits");
}

}  // namespace

BlobStore::BlobStore(std::string dir, uint64_t blob_bytes_max)
    : dir_(std::move(dir)),
      tmp_dir_(dir_ + "/" + std::string(kTmpDirName)),
      blob_bytes_max_(blob_bytes_max) {}

absl::StatusOr<std::unique_ptr<BlobStore>> BlobStore::Open(std::string dir,
                                                           uint64_t blob_bytes_max) {
  EnsureSodium();
  if (dir.empty()) return absl::InvalidArgumentError("blob directory must not be empty");
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();

  std::error_code error;
  const bool created = std::filesystem::create_directories(dir, error);
  if (error) return ErrnoError(error.value(), "create_directories", dir);
  if (created) {
    const std::filesystem::path parent = std::filesystem::path(dir).parent_path();
    OCX_RETURN_IF_ERROR(SyncDirectory(parent.empty() ? "." : parent.string()));
  }
  struct stat info;
  if (::stat(dir.c_str(), &info) != 0) return ErrnoError(errno, "stat", dir);
  if (!S_ISDIR(info.st_mode)) {
    return absl::FailedPreconditionError(dir + " exists and is not a directory");
  }

  // The constructor is private, out of make_unique's reach; owned from the first moment.
  std::unique_ptr<BlobStore> store(new BlobStore(std::move(dir), blob_bytes_max));
  absl::StatusOr<bool> tmp_created = MakeDirectory(store->tmp_dir_);
  if (!tmp_created.ok()) return tmp_created.status();
  if (*tmp_created) OCX_RETURN_IF_ERROR(SyncDirectory(store->dir_));

  // Files left by writes that a crash interrupted: never renamed, so never part of a blob.
  bool removed_any = false;
  for (std::filesystem::directory_iterator it(store->tmp_dir_, error), end; !error && it != end;
       it.increment(error)) {
    std::error_code remove_error;
    std::filesystem::remove_all(it->path(), remove_error);
    if (remove_error) return ErrnoError(remove_error.value(), "remove", it->path().string());
    removed_any = true;
  }
  if (error) return ErrnoError(error.value(), "list", store->tmp_dir_);
  if (removed_any) OCX_RETURN_IF_ERROR(SyncDirectory(store->tmp_dir_));
  return store;
}

absl::StatusOr<BlobInfo> BlobStore::Put(std::string_view data,
                                        std::optional<std::string_view> expected_sha256) {
  if (data.size() > blob_bytes_max_) {
    return absl::ResourceExhaustedError("blob_too_large: " + std::to_string(data.size()) +
                                        " bytes, the limit is " + std::to_string(blob_bytes_max_));
  }
  if (expected_sha256.has_value() && !IsValidDigest(*expected_sha256)) {
    return InvalidDigest(*expected_sha256);
  }
  BlobInfo info{Sha256Hex(data), data.size()};
  if (expected_sha256.has_value() && *expected_sha256 != info.sha256) {
    return absl::InvalidArgumentError("digest_mismatch: the content's SHA-256 is " + info.sha256 +
                                      ", not " + std::string(*expected_sha256));
  }

  const std::string path = PathOf(info.sha256);
  const std::string shard_dir = dir_ + "/" + info.sha256.substr(0, 2);
  OCX_RETURN_IF_ERROR(EnsureShardDirectory(shard_dir, info.sha256));
  struct stat existing;
  if (::stat(path.c_str(), &existing) == 0 && S_ISREG(existing.st_mode) &&
      static_cast<uint64_t>(existing.st_size) == info.size) {
    // Already stored: the name guarantees the bytes, which were synced before the rename.
    // The rename itself may not be durable yet (a concurrent Put between its rename and its
    // directory sync, or an earlier Put whose sync failed), so sync before saying yes.
    OCX_RETURN_IF_ERROR(SyncDirectory(shard_dir));
    return info;
  }

  // mkostemp makes the name unique, so concurrent Puts of one blob never share a file.
  std::string tmp_path = tmp_dir_ + "/" + info.sha256 + ".XXXXXX";
  base::UniqueFd fd(::mkostemp(tmp_path.data(), O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(errno, "mkostemp", tmp_path);
  absl::Status status = WriteFully(fd.get(), data, tmp_path);
  if (status.ok() && ::fsync(fd.get()) != 0) status = ErrnoError(errno, "fsync", tmp_path);
  if (status.ok() && ::close(fd.Release()) != 0) status = ErrnoError(errno, "close", tmp_path);
  if (status.ok() && ::rename(tmp_path.c_str(), path.c_str()) != 0) {
    status = ErrnoError(errno, "rename", tmp_path);
  }
  if (!status.ok()) {
    ::unlink(tmp_path.c_str());  // Best effort; Open removes it otherwise.
    return status;
  }
  // The rename is durable only once the directory holding the new name is synced.
  OCX_RETURN_IF_ERROR(SyncDirectory(shard_dir));
  return info;
}

absl::Status BlobStore::EnsureShardDirectory(const std::string& shard_dir,
                                             std::string_view sha256) {
  const size_t shard = HexValue(sha256[0]) * 16 + HexValue(sha256[1]);
  if (shard_durable_[shard].load(std::memory_order_acquire)) return absl::OkStatus();
  // Whoever made the directory (this process or a crashed earlier one) may not have synced
  // its entry yet, so the first Put into a shard syncs the parent even when it existed.
  absl::StatusOr<bool> created = MakeDirectory(shard_dir);
  if (!created.ok()) return created.status();
  OCX_RETURN_IF_ERROR(SyncDirectory(dir_));
  shard_durable_[shard].store(true, std::memory_order_release);
  return absl::OkStatus();
}

absl::StatusOr<std::string> BlobStore::Get(std::string_view sha256) const {
  if (!IsValidDigest(sha256)) return InvalidDigest(sha256);
  const std::string path = PathOf(sha256);
  base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return absl::NotFoundError("blob " + std::string(sha256) + " not found");
    return ErrnoError(errno, "open", path);
  }
  struct stat info;
  if (::fstat(fd.get(), &info) != 0) return ErrnoError(errno, "fstat", path);
  std::string data(static_cast<size_t>(info.st_size), '\0');
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::read(fd.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "read", path);
    if (n == 0) {
      // Blobs are never modified in place: a shorter file means damage, not a race.
      return absl::DataLossError(path + " is shorter than its size");
    }
    done += static_cast<size_t>(n);
  }
  return data;
}

absl::StatusOr<uint64_t> BlobStore::Size(std::string_view sha256) const {
  if (!IsValidDigest(sha256)) return InvalidDigest(sha256);
  const std::string path = PathOf(sha256);
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) {
    if (errno == ENOENT) return absl::NotFoundError("blob " + std::string(sha256) + " not found");
    return ErrnoError(errno, "stat", path);
  }
  return static_cast<uint64_t>(info.st_size);
}

bool BlobStore::IsValidDigest(std::string_view text) {
  if (text.size() != kDigestHexChars) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string BlobStore::Sha256Hex(std::string_view data) {
  EnsureSodium();
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  char hex[crypto_hash_sha256_BYTES * 2 + 1];
  sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
  return std::string(hex, crypto_hash_sha256_BYTES * 2);
}

std::string BlobStore::PathOf(std::string_view sha256) const {
  OCX_ASSERT(IsValidDigest(sha256));
  return dir_ + "/" + std::string(sha256.substr(0, 2)) + "/" + std::string(sha256);
}

}  // namespace ocx::api
