#include "src/api/blob_store.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>
#include <vector>

#include "src/base/assert.h"
#include "src/base/errno_status.h"
#include "src/base/sha256.h"
#include "src/base/status.h"
#include "src/store/sqlite/sqlite_db.h"

namespace ocx::api {
namespace {

using store::sqlite::Db;
using Stmt = store::sqlite::Statement;

constexpr std::string_view kTmpDirName = "tmp";
constexpr std::string_view kUploadDirName = "uploads";
constexpr char kIndexFile[] = "index.sqlite";
// A download refreshes a blob's last use at most this often (one index write per blob per
// minute, not per download).
constexpr int64_t kTouchIntervalMicros = 60'000'000;

constexpr char kIndexSchemaSql[] = R"sql(
CREATE TABLE IF NOT EXISTS blobs (
  sha256    TEXT PRIMARY KEY,
  size      INTEGER NOT NULL,
  created   INTEGER NOT NULL,
  last_used INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS owners (
  account INTEGER NOT NULL,
  sha256  TEXT NOT NULL,
  PRIMARY KEY (account, sha256)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS owners_sha256 ON owners (sha256);
)sql";

absl::Status SyncDirectory(const std::string& dir) {
  base::UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return base::ErrnoStatus(errno, "open", dir);
  if (::fsync(fd.get()) != 0) return base::ErrnoStatus(errno, "fsync", dir);
  return absl::OkStatus();
}

// Creates `dir` (one level) unless it exists; true when created (the caller syncs the
// parent then).
absl::StatusOr<bool> MakeDirectory(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) == 0) return true;
  if (errno != EEXIST) return base::ErrnoStatus(errno, "mkdir", dir);
  struct stat info;
  if (::stat(dir.c_str(), &info) != 0) return base::ErrnoStatus(errno, "stat", dir);
  if (!S_ISDIR(info.st_mode)) {
    return absl::FailedPreconditionError(dir + " exists and is not a directory");
  }
  return false;
}

absl::Status WriteFully(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return base::ErrnoStatus(errno, "write", path);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// The value of a lowercase hex digit (the digest was validated).
size_t HexValue(char c) {
  return c <= '9' ? static_cast<size_t>(c - '0') : static_cast<size_t>(c - 'a' + 10);
}

absl::Status EmptyDirectory(const std::string& dir) {
  std::error_code error;
  bool removed_any = false;
  for (std::filesystem::directory_iterator it(dir, error), end; !error && it != end;
       it.increment(error)) {
    std::error_code remove_error;
    std::filesystem::remove_all(it->path(), remove_error);
    if (remove_error) return base::ErrnoStatus(remove_error.value(), "remove", it->path().string());
    removed_any = true;
  }
  if (error) return base::ErrnoStatus(error.value(), "list", dir);
  if (removed_any) OCX_RETURN_IF_ERROR(SyncDirectory(dir));
  return absl::OkStatus();
}

absl::Status DigestMismatch(const std::string& actual, std::string_view expected) {
  return absl::InvalidArgumentError("digest_mismatch: the content's SHA-256 is " + actual +
                                    ", not " + std::string(expected.substr(0, 64)));
}

}  // namespace

BlobStore::BlobStore(BlobStoreOptions options)
    : options_(std::move(options)),
      tmp_dir_(options_.dir + "/" + std::string(kTmpDirName)),
      upload_dir_(options_.dir + "/" + std::string(kUploadDirName)) {}

BlobStore::~BlobStore() = default;

absl::StatusOr<std::unique_ptr<BlobStore>> BlobStore::Open(std::string dir,
                                                           uint64_t blob_bytes_max) {
  BlobStoreOptions options;
  options.dir = std::move(dir);
  options.blob_bytes_max = blob_bytes_max;
  return Open(std::move(options), 0);
}

absl::StatusOr<std::unique_ptr<BlobStore>> BlobStore::Open(BlobStoreOptions options,
                                                           int64_t now_micros) {
  std::string& dir = options.dir;
  if (dir.empty()) return absl::InvalidArgumentError("blob directory must not be empty");
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();

  std::error_code error;
  const bool created = std::filesystem::create_directories(dir, error);
  if (error) return base::ErrnoStatus(error.value(), "create_directories", dir);
  if (created) {
    const std::filesystem::path parent = std::filesystem::path(dir).parent_path();
    OCX_RETURN_IF_ERROR(SyncDirectory(parent.empty() ? "." : parent.string()));
  }
  struct stat info;
  if (::stat(dir.c_str(), &info) != 0) return base::ErrnoStatus(errno, "stat", dir);
  if (!S_ISDIR(info.st_mode)) {
    return absl::FailedPreconditionError(dir + " exists and is not a directory");
  }

  // The constructor is private, out of make_unique's reach; owned from the first moment.
  std::unique_ptr<BlobStore> store(new BlobStore(std::move(options)));
  for (const std::string* sub : {&store->tmp_dir_, &store->upload_dir_}) {
    absl::StatusOr<bool> made = MakeDirectory(*sub);
    if (!made.ok()) return made.status();
    if (*made) OCX_RETURN_IF_ERROR(SyncDirectory(store->options_.dir));
    // Files left by writes and uploads a crash interrupted: never renamed, never blobs.
    OCX_RETURN_IF_ERROR(EmptyDirectory(*sub));
  }
  OCX_RETURN_IF_ERROR(store->OpenIndex(now_micros));
  return store;
}

absl::Status BlobStore::OpenIndex(int64_t now_micros) {
  std::lock_guard lock(mu_);
  const std::string path = options_.dir + "/" + kIndexFile;
  OCX_ASSIGN_OR_RETURN(Db db, Db::Open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
  index_ = std::make_unique<Db>(std::move(db));
  // WAL with synchronous=NORMAL: a power loss may forget the last owner rows (the blob is
  // then ownerless: its uploader uploads it again), never corrupt the index.
  OCX_RETURN_IF_ERROR(index_->Exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL"));
  OCX_RETURN_IF_ERROR(index_->Exec(kIndexSchemaSql));

  // Blob files the index does not know (written before the index existed, or a crash between
  // a rename and its row): recorded without an owner.
  OCX_ASSIGN_OR_RETURN(Stmt known, Stmt::Prepare(*index_, "SELECT 1 FROM blobs WHERE sha256 = ?1"));
  OCX_ASSIGN_OR_RETURN(
      Stmt insert,
      Stmt::Prepare(*index_,
                    "INSERT INTO blobs (sha256, size, created, last_used) VALUES (?1, ?2, ?3, ?3)"));
  OCX_RETURN_IF_ERROR(index_->Exec("BEGIN"));
  std::error_code error;
  for (std::filesystem::directory_iterator shard(options_.dir, error), end; !error && shard != end;
       shard.increment(error)) {
    const std::string name = shard->path().filename().string();
    if (name.size() != 2 || !shard->is_directory() || !IsValidDigest(name + std::string(62, '0'))) {
      continue;
    }
    std::error_code inner;
    for (std::filesystem::directory_iterator file(shard->path(), inner), stop;
         !inner && file != stop; file.increment(inner)) {
      const std::string sha256 = file->path().filename().string();
      if (!IsValidDigest(sha256) || !sha256.starts_with(name)) continue;
      known.Bind(1, sha256);
      OCX_ASSIGN_OR_RETURN(const bool exists, known.Step());
      known.Reset();
      if (exists) continue;
      std::error_code size_error;
      const uint64_t size = std::filesystem::file_size(file->path(), size_error);
      if (size_error) continue;
      insert.Bind(1, sha256).Bind(2, static_cast<int64_t>(size)).Bind(3, now_micros);
      OCX_RETURN_IF_ERROR(insert.Run());
    }
  }
  OCX_RETURN_IF_ERROR(index_->Exec("COMMIT"));

  OCX_ASSIGN_OR_RETURN(Stmt usage,
                       Stmt::Prepare(*index_,
                                     "SELECT o.account, SUM(b.size) FROM owners o JOIN blobs b "
                                     "ON b.sha256 = o.sha256 GROUP BY o.account"));
  for (;;) {
    OCX_ASSIGN_OR_RETURN(const bool row, usage.Step());
    if (!row) break;
    usage_[static_cast<uint64_t>(usage.Int(0))] = static_cast<uint64_t>(usage.Int(1));
  }
  return absl::OkStatus();
}

absl::Status BlobStore::FreeSpaceFor(uint64_t bytes) const {
  struct statvfs fs;
  if (::statvfs(options_.dir.c_str(), &fs) != 0) {
    return base::ErrnoStatus(errno, "statvfs", options_.dir);
  }
  const uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  if (free_bytes < options_.disk_free_min_bytes ||
      free_bytes - options_.disk_free_min_bytes < bytes) {
    return absl::UnavailableError(
        "The exchange is low on disk space (" + std::to_string(free_bytes >> 20) +
        " MiB free, " + std::to_string(options_.disk_free_min_bytes >> 20) +
        " MiB kept back) and takes no uploads now.");
  }
  return absl::OkStatus();
}

absl::Status BlobStore::CheckRoom(uint64_t owner, uint64_t bytes) const {
  if (bytes > options_.blob_bytes_max) {
    return absl::OutOfRangeError("A blob is at most " + std::to_string(options_.blob_bytes_max) +
                                 " bytes.");
  }
  {
    std::lock_guard lock(mu_);
    const auto it = usage_.find(owner);
    const uint64_t used = it == usage_.end() ? 0 : it->second;
    if (used > options_.quota_bytes_per_account ||
        options_.quota_bytes_per_account - used < bytes) {
      return absl::ResourceExhaustedError(
          "The account's blobs take " + std::to_string(used) + " of its " +
          std::to_string(options_.quota_bytes_per_account) +
          " bytes; this upload does not fit (blobs no task needs are collected after a day).");
    }
  }
  return FreeSpaceFor(bytes);
}

absl::StatusOr<BlobInfo> BlobStore::Put(std::string_view data,
                                        std::optional<std::string_view> expected_sha256,
                                        uint64_t owner, int64_t now_micros) {
  const std::string sha256 = Sha256Hex(data);
  if (expected_sha256.has_value() && *expected_sha256 != sha256) {
    return DigestMismatch(sha256, *expected_sha256);
  }
  if (IsOwner(owner, sha256)) return BlobInfo{sha256, data.size()};
  OCX_RETURN_IF_ERROR(CheckRoom(owner, data.size()));
  // mkostemp makes the name unique, so concurrent Puts of one blob never share a file.
  std::string tmp_path = tmp_dir_ + "/" + sha256 + ".XXXXXX";
  base::UniqueFd fd(::mkostemp(tmp_path.data(), O_CLOEXEC));
  if (!fd.valid()) return base::ErrnoStatus(errno, "mkostemp", tmp_path);
  absl::Status status = WriteFully(fd.get(), data, tmp_path);
  if (status.ok() && ::fsync(fd.get()) != 0) status = base::ErrnoStatus(errno, "fsync", tmp_path);
  if (status.ok() && ::close(fd.Release()) != 0) {
    status = base::ErrnoStatus(errno, "close", tmp_path);
  }
  if (!status.ok()) {
    ::unlink(tmp_path.c_str());  // Best effort; Open removes it otherwise.
    return status;
  }
  absl::StatusOr<BlobInfo> installed = Install(tmp_path, data.size(), sha256, owner, now_micros);
  if (!installed.ok()) ::unlink(tmp_path.c_str());
  return installed;
}

absl::StatusOr<BlobInfo> BlobStore::Adopt(const std::string& path, uint64_t size,
                                          const std::string& sha256, uint64_t owner,
                                          std::optional<std::string_view> expected_sha256,
                                          int64_t now_micros) {
  OCX_ASSERT(IsValidDigest(sha256));
  if (expected_sha256.has_value() && *expected_sha256 != sha256) {
    return DigestMismatch(sha256, *expected_sha256);
  }
  if (IsOwner(owner, sha256)) return BlobInfo{sha256, size};
  OCX_RETURN_IF_ERROR(CheckRoom(owner, 0));  // The disk had the room: the bytes are here.
  {
    base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return base::ErrnoStatus(errno, "open", path);
    if (::fsync(fd.get()) != 0) return base::ErrnoStatus(errno, "fsync", path);
  }
  return Install(path, size, sha256, owner, now_micros);
}

absl::StatusOr<BlobInfo> BlobStore::Install(const std::string& path, uint64_t size,
                                            const std::string& sha256, uint64_t owner,
                                            int64_t now_micros) {
  {
    // The quota with this blob counted, checked again now that the size is certain.
    std::lock_guard lock(mu_);
    const uint64_t used = usage_[owner];
    if (used > options_.quota_bytes_per_account ||
        options_.quota_bytes_per_account - used < size) {
      return absl::ResourceExhaustedError("The upload does not fit the account's blob quota of " +
                                          std::to_string(options_.quota_bytes_per_account) +
                                          " bytes.");
    }
  }
  const std::string destination = PathOf(sha256);
  const std::string shard_dir = options_.dir + "/" + sha256.substr(0, 2);
  OCX_RETURN_IF_ERROR(EnsureShardDirectory(shard_dir, sha256));
  struct stat existing;
  if (::stat(destination.c_str(), &existing) == 0 && S_ISREG(existing.st_mode) &&
      static_cast<uint64_t>(existing.st_size) == size) {
    // Already stored: the name guarantees the bytes, which were synced before the rename.
    ::unlink(path.c_str());
  } else if (::rename(path.c_str(), destination.c_str()) != 0) {
    return base::ErrnoStatus(errno, "rename", path);
  }
  // The rename (or an earlier one, perhaps not yet synced) is durable only once the
  // directory holding the new name is synced.
  OCX_RETURN_IF_ERROR(SyncDirectory(shard_dir));
  std::lock_guard lock(mu_);
  OCX_RETURN_IF_ERROR(index_->Exec("BEGIN"));
  {
    OCX_ASSIGN_OR_RETURN(Stmt blob, Stmt::Prepare(*index_,
                                                  "INSERT INTO blobs (sha256, size, created, "
                                                  "last_used) VALUES (?1, ?2, ?3, ?3) ON CONFLICT "
                                                  "(sha256) DO UPDATE SET last_used = ?3"));
    blob.Bind(1, sha256).Bind(2, static_cast<int64_t>(size)).Bind(3, now_micros);
    absl::Status done = blob.Run();
    OCX_ASSIGN_OR_RETURN(Stmt own, Stmt::Prepare(*index_,
                                                 "INSERT OR IGNORE INTO owners (account, sha256) "
                                                 "VALUES (?1, ?2)"));
    own.Bind(1, static_cast<int64_t>(owner)).Bind(2, sha256);
    if (done.ok()) done = own.Run();
    if (done.ok() && own.changes() > 0) usage_[owner] += size;
    if (!done.ok()) {
      (void)index_->Exec("ROLLBACK");
      return done;
    }
  }
  OCX_RETURN_IF_ERROR(index_->Exec("COMMIT"));
  return BlobInfo{sha256, size};
}

absl::Status BlobStore::EnsureShardDirectory(const std::string& shard_dir,
                                             std::string_view sha256) {
  const size_t shard = HexValue(sha256[0]) * 16 + HexValue(sha256[1]);
  if (shard_durable_[shard].load(std::memory_order_acquire)) return absl::OkStatus();
  // Whoever made the directory (this process or a crashed earlier one) may not have synced
  // its entry yet, so the first write into a shard syncs the parent even when it existed.
  absl::StatusOr<bool> created = MakeDirectory(shard_dir);
  if (!created.ok()) return created.status();
  OCX_RETURN_IF_ERROR(SyncDirectory(options_.dir));
  shard_durable_[shard].store(true, std::memory_order_release);
  return absl::OkStatus();
}

absl::StatusOr<base::UniqueFd> BlobStore::OpenBlob(std::string_view sha256) const {
  if (!IsValidDigest(sha256)) return absl::InvalidArgumentError("not a SHA-256 digest");
  const std::string path = PathOf(sha256);
  base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return absl::NotFoundError("blob " + std::string(sha256) + " not found");
    return base::ErrnoStatus(errno, "open", path);
  }
  return fd;
}

absl::StatusOr<std::string> BlobStore::Get(std::string_view sha256) const {
  OCX_ASSIGN_OR_RETURN(base::UniqueFd fd, OpenBlob(sha256));
  struct stat info;
  if (::fstat(fd.get(), &info) != 0) return base::ErrnoStatus(errno, "fstat", PathOf(sha256));
  std::string data(static_cast<size_t>(info.st_size), '\0');
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::read(fd.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return base::ErrnoStatus(errno, "read", PathOf(sha256));
    if (n == 0) {
      // Blobs are never modified in place: a shorter file means damage, not a race.
      return absl::DataLossError(PathOf(sha256) + " is shorter than its size");
    }
    done += static_cast<size_t>(n);
  }
  return data;
}

absl::StatusOr<uint64_t> BlobStore::Size(std::string_view sha256) const {
  if (!IsValidDigest(sha256)) return absl::InvalidArgumentError("not a SHA-256 digest");
  const std::string path = PathOf(sha256);
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) {
    if (errno == ENOENT) return absl::NotFoundError("blob " + std::string(sha256) + " not found");
    return base::ErrnoStatus(errno, "stat", path);
  }
  return static_cast<uint64_t>(info.st_size);
}

bool BlobStore::IsOwner(uint64_t account, std::string_view sha256) const {
  std::lock_guard lock(mu_);
  auto stmt = Stmt::Prepare(*index_, "SELECT 1 FROM owners WHERE account = ?1 AND sha256 = ?2");
  if (!stmt.ok()) return false;
  stmt->Bind(1, static_cast<int64_t>(account)).Bind(2, sha256);
  const absl::StatusOr<bool> row = stmt->Step();
  return row.ok() && *row;
}

void BlobStore::Touch(std::string_view sha256, int64_t now_micros) {
  std::lock_guard lock(mu_);
  auto stmt = Stmt::Prepare(*index_,
                            "UPDATE blobs SET last_used = ?2 WHERE sha256 = ?1 AND last_used < ?3");
  if (!stmt.ok()) return;
  stmt->Bind(1, sha256).Bind(2, now_micros).Bind(3, now_micros - kTouchIntervalMicros);
  (void)stmt->Run();  // Best effort: a lost touch only makes the blob collectable sooner.
}

uint64_t BlobStore::UsageOf(uint64_t account) const {
  std::lock_guard lock(mu_);
  const auto it = usage_.find(account);
  return it == usage_.end() ? 0 : it->second;
}

absl::StatusOr<BlobCollection> BlobStore::CollectGarbage(
    int64_t now_micros, const std::function<absl::StatusOr<bool>(const std::string&)>& referenced,
    size_t max) {
  BlobCollection report;
  std::vector<std::pair<std::string, uint64_t>> candidates;
  {
    std::lock_guard lock(mu_);
    OCX_ASSIGN_OR_RETURN(Stmt old, Stmt::Prepare(*index_,
                                                 "SELECT sha256, size FROM blobs WHERE created < "
                                                 "?1 AND last_used < ?1 ORDER BY last_used LIMIT "
                                                 "?2"));
    old.Bind(1, now_micros - options_.grace_micros).Bind(2, static_cast<int64_t>(max));
    for (;;) {
      OCX_ASSIGN_OR_RETURN(const bool row, old.Step());
      if (!row) break;
      candidates.emplace_back(old.Text(0), static_cast<uint64_t>(old.Int(1)));
    }
  }
  for (const auto& [sha256, size] : candidates) {
    ++report.examined;
    OCX_ASSIGN_OR_RETURN(const bool needed, referenced(sha256));
    if (needed) {
      // Still needed: counts as used now, so it is not examined again before the grace ends.
      std::lock_guard lock(mu_);
      OCX_ASSIGN_OR_RETURN(Stmt touch,
                           Stmt::Prepare(*index_, "UPDATE blobs SET last_used = ?2 WHERE sha256 = ?1"));
      touch.Bind(1, sha256).Bind(2, now_micros);
      OCX_RETURN_IF_ERROR(touch.Run());
      continue;
    }
    std::lock_guard lock(mu_);
    if (::unlink(PathOf(sha256).c_str()) != 0 && errno != ENOENT) {
      return base::ErrnoStatus(errno, "unlink", PathOf(sha256));
    }
    OCX_ASSIGN_OR_RETURN(Stmt owners,
                         Stmt::Prepare(*index_, "SELECT account FROM owners WHERE sha256 = ?1"));
    owners.Bind(1, sha256);
    for (;;) {
      OCX_ASSIGN_OR_RETURN(const bool row, owners.Step());
      if (!row) break;
      uint64_t& used = usage_[static_cast<uint64_t>(owners.Int(0))];
      used = used >= size ? used - size : 0;
    }
    owners.Reset();
    OCX_ASSIGN_OR_RETURN(Stmt forget, Stmt::Prepare(*index_,
                                                    "DELETE FROM owners WHERE sha256 = ?1; "));
    forget.Bind(1, sha256);
    OCX_RETURN_IF_ERROR(forget.Run());
    OCX_ASSIGN_OR_RETURN(Stmt drop, Stmt::Prepare(*index_, "DELETE FROM blobs WHERE sha256 = ?1"));
    drop.Bind(1, sha256);
    OCX_RETURN_IF_ERROR(drop.Run());
    ++report.deleted;
    report.bytes_freed += size;
  }
  return report;
}

bool BlobStore::IsValidDigest(std::string_view text) { return base::IsSha256Hex(text); }

std::string BlobStore::Sha256Hex(std::string_view data) { return base::Sha256Hex(data); }

std::string BlobStore::PathOf(std::string_view sha256) const {
  OCX_ASSERT(IsValidDigest(sha256));
  return options_.dir + "/" + std::string(sha256.substr(0, 2)) + "/" + std::string(sha256);
}

}  // namespace ocx::api
