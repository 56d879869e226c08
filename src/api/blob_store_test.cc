#include "src/api/blob_store.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "src/base/testing/temp_dir.h"

namespace ocx::api {
namespace {

using base::testing::TempDir;

constexpr uint64_t kBlobBytesMax = 1 << 20;
constexpr uint64_t kOwner = 7;
constexpr std::string_view kAbcSha256 =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::unique_ptr<BlobStore> OpenOrDie(const std::string& dir, uint64_t max = kBlobBytesMax) {
  absl::StatusOr<std::unique_ptr<BlobStore>> store = BlobStore::Open(dir, max);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

// Every regular file under `dir`, relative to it, sorted.
std::vector<std::string> FilesUnder(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && !name.starts_with("index.sqlite")) {
      files.push_back(std::filesystem::relative(entry.path(), dir).string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(BlobStoreTest, Sha256KnownAnswers) {
  EXPECT_EQ(BlobStore::Sha256Hex("abc"), kAbcSha256);
  EXPECT_EQ(BlobStore::Sha256Hex(""), kEmptySha256);
}

TEST(BlobStoreTest, PutThenGetRoundTrips) {
  TempDir dir;
  std::unique_ptr<BlobStore> store = OpenOrDie(dir.File("blobs"));
  ASSERT_NE(store, nullptr);
  std::string data(100'000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + i / 300);
  absl::StatusOr<BlobInfo> info = store->Put(data, std::nullopt, kOwner, 0);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->sha256, BlobStore::Sha256Hex(data));
  EXPECT_EQ(info->size, data.size());

  absl::StatusOr<std::string> read = store->Get(info->sha256);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, data);
  absl::StatusOr<uint64_t> size = store->Size(info->sha256);
  ASSERT_TRUE(size.ok()) << size.status();
  EXPECT_EQ(*size, data.size());
}

TEST(BlobStoreTest, BlobLivesAtTheDocumentedPath) {
  TempDir dir;
  std::unique_ptr<BlobStore> store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put("abc", kAbcSha256, kOwner, 0).ok());
  EXPECT_EQ(FilesUnder(dir.path()), std::vector<std::string>{"ba/" + std::string(kAbcSha256)});
  EXPECT_EQ(store->PathOf(kAbcSha256), dir.path() + "/ba/" + std::string(kAbcSha256));
  std::ifstream file(store->PathOf(kAbcSha256));
  std::string contents((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_EQ(contents, "abc");
}

TEST(BlobStoreTest, EmptyBlobIsABlob) {
  TempDir dir;
  std::unique_ptr<BlobStore> store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  absl::StatusOr<BlobInfo> info = store->Put("", kEmptySha256, kOwner, 0);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->size, 0u);
  absl::StatusOr<std::string> read = store->Get(kEmptySha256);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "");
}

TEST(BlobStoreTest, DigestMismatchKeepsNothing) {
  TempDir dir;
  std::unique_ptr<BlobStore> store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  absl::StatusOr<BlobInfo> info = store->Put("abd", kAbcSha256, kOwner, 0);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(info.status().message(), "digest_mismatch")) << info.status();
  EXPECT_TRUE(FilesUnder(dir.path()).empty());
  EXPECT_EQ(store->Get(kAbcSha256).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->Get(BlobStore::Sha256Hex("abd")).status().code(), absl::StatusCode::kNotFound);
}

TEST(BlobStoreTest, BlobLargerThanTheLimitIsRefused) {
  TempDir dir;
  std::unique_ptr<BlobStore> store = OpenOrDie(dir.path(), /*max=*/16);
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->Put(std::string(16, 'x'), std::nullopt, kOwner, 0).ok());
  absl::StatusOr<BlobInfo> big = store->Put(std::string(17, 'x'), std::nullopt, kOwner, 0);
  EXPECT_EQ(big.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(FilesUnder(dir.path()).size(), 1u);
}

TEST(BlobStoreTest, BadDigestsAreRefused) {
  TempDir dir;
  std::unique_ptr<BlobStore> store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  const std::string upper = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
  const std::vector<std::string> bad = {
      "",
      "ba7816bf",
      upper,
      std::string(kAbcSha256) + "0",
      "../" + std::string(kAbcSha256).substr(3),
      "ba/" + std::string(kAbcSha256).substr(3),
      std::string(64, 'g'),
      std::string(kAbcSha256).substr(0, 63) + std::string(1, '\0'),
  };
  for (const std::string& digest : bad) {
    EXPECT_FALSE(BlobStore::IsValidDigest(digest)) << digest;
    EXPECT_EQ(store->Get(digest).status().code(), absl::StatusCode::kInvalidArgument) << digest;
    EXPECT_EQ(store->Size(digest).status().code(), absl::StatusCode::kInvalidArgument) << digest;
    EXPECT_EQ(store->Put("abc", digest, kOwner, 0).status().code(), absl::StatusCode::kInvalidArgument)
        << digest;
  }
  EXPECT_TRUE(BlobStore::IsValidDigest(kAbcSha256));
  EXPECT_TRUE(FilesUnder(dir.path()).empty());
}

TEST(BlobStoreTest, AbsentBlobIsNotFound) {
  TempDir dir;
  std::unique_ptr<BlobStore> store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Get(kAbcSha256).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->Size(kAbcSha256).status().code(), absl::StatusCode::kNotFound);
}

TEST(BlobStoreTest, PuttingAnExistingBlobAgainIsOk) {
  TempDir dir;
  std::unique_ptr<BlobStore> store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put("abc", std::nullopt, kOwner, 0).ok());
  absl::StatusOr<BlobInfo> again = store->Put("abc", kAbcSha256, kOwner, 0);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->sha256, kAbcSha256);
  EXPECT_EQ(again->size, 3u);
  EXPECT_EQ(FilesUnder(dir.path()).size(), 1u);
  EXPECT_EQ(*store->Get(kAbcSha256), "abc");
}

TEST(BlobStoreTest, OpenRemovesLeftoverTemporaryFilesAndKeepsBlobs) {
  TempDir dir;
  {
    std::unique_ptr<BlobStore> store = OpenOrDie(dir.path());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put("abc", std::nullopt, kOwner, 0).ok());
  }
  // What a crash mid-write leaves behind.
  std::ofstream(dir.File("tmp/" + std::string(kAbcSha256) + ".a1b2c3")) << "ab";
  std::filesystem::create_directories(dir.File("tmp/stray/deeper"));
  std::ofstream(dir.File("tmp/stray/deeper/x")) << "x";

  std::unique_ptr<BlobStore> store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(std::filesystem::is_empty(dir.File("tmp")));
  EXPECT_EQ(FilesUnder(dir.path()), std::vector<std::string>{"ba/" + std::string(kAbcSha256)});
  EXPECT_EQ(*store->Get(kAbcSha256), "abc");
}

TEST(BlobStoreTest, OpenCreatesMissingParents) {
  TempDir dir;
  std::unique_ptr<BlobStore> store = OpenOrDie(dir.File("a/b/blobs/"));
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->dir(), dir.File("a/b/blobs"));
  EXPECT_TRUE(std::filesystem::is_directory(dir.File("a/b/blobs/tmp")));
}

TEST(BlobStoreTest, OpenRefusesAFileWhereTheDirectoryShouldBe) {
  TempDir dir;
  std::ofstream(dir.File("blobs")) << "not a directory";
  EXPECT_FALSE(BlobStore::Open(dir.File("blobs"), kBlobBytesMax).ok());
  EXPECT_FALSE(BlobStore::Open("", kBlobBytesMax).ok());
}

TEST(BlobStoreTest, ConcurrentPutsOfTheSameAndDifferentBlobs) {
  TempDir dir;
  std::unique_ptr<BlobStore> store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 4;
  constexpr int kRounds = 5;
  const std::string shared(10'000, 's');
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        if (!store->Put(shared, std::nullopt, kOwner, 0).ok()) ++failures[t];
        const std::string own = "thread " + std::to_string(t) + " round " + std::to_string(i);
        if (!store->Put(own, std::nullopt, kOwner, 0).ok()) ++failures[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;

  EXPECT_EQ(*store->Get(BlobStore::Sha256Hex(shared)), shared);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kRounds; ++i) {
      const std::string own = "thread " + std::to_string(t) + " round " + std::to_string(i);
      EXPECT_EQ(*store->Get(BlobStore::Sha256Hex(own)), own);
    }
  }
  EXPECT_EQ(FilesUnder(dir.path()).size(), 1u + kThreads * kRounds);
  EXPECT_TRUE(std::filesystem::is_empty(dir.File("tmp")));
}

BlobStoreOptions Options(const std::string& dir) {
  BlobStoreOptions options;
  options.dir = dir;
  options.blob_bytes_max = kBlobBytesMax;
  options.quota_bytes_per_account = 100;
  options.disk_free_min_bytes = 0;
  options.grace_micros = 1000;
  return options;
}

TEST(BlobStoreTest, OwnersAreRecordedAndSurviveAReopen) {
  TempDir dir;
  {
    auto store = BlobStore::Open(Options(dir.path()), 0);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Put("abc", std::nullopt, 1, 0).ok());
    ASSERT_TRUE((*store)->Put("abc", std::nullopt, 2, 0).ok());
    EXPECT_TRUE((*store)->IsOwner(1, kAbcSha256));
    EXPECT_TRUE((*store)->IsOwner(2, kAbcSha256));
    EXPECT_FALSE((*store)->IsOwner(3, kAbcSha256));
    EXPECT_EQ((*store)->UsageOf(1), 3u);
    EXPECT_EQ((*store)->UsageOf(2), 3u);  // Each uploader is charged.
  }
  auto store = BlobStore::Open(Options(dir.path()), 0);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE((*store)->IsOwner(1, kAbcSha256));
  EXPECT_EQ((*store)->UsageOf(2), 3u);
}

TEST(BlobStoreTest, AnUploadPastTheQuotaIsRefusedAndKeepsNothing) {
  TempDir dir;
  auto store = BlobStore::Open(Options(dir.path()), 0);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Put(std::string(60, 'a'), std::nullopt, 1, 0).ok());
  EXPECT_EQ((*store)->CheckRoom(1, 41).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE((*store)->CheckRoom(1, 40).ok());
  const auto refused = (*store)->Put(std::string(41, 'b'), std::nullopt, 1, 0);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(FilesUnder(dir.path()).size(), 1u);
  // Another account has its own quota.
  EXPECT_TRUE((*store)->Put(std::string(41, 'b'), std::nullopt, 2, 0).ok());
  // Uploading a blob one already owns costs nothing more.
  EXPECT_TRUE((*store)->Put(std::string(60, 'a'), std::nullopt, 1, 0).ok());
  EXPECT_EQ((*store)->UsageOf(1), 60u);
}

TEST(BlobStoreTest, UploadsStopBelowTheFreeSpaceWatermark) {
  TempDir dir;
  BlobStoreOptions options = Options(dir.path());
  options.disk_free_min_bytes = uint64_t{1} << 62;  // More than any disk has.
  auto store = BlobStore::Open(options, 0);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->CheckRoom(1, 1).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ((*store)->Put("abc", std::nullopt, 1, 0).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_TRUE(FilesUnder(dir.path()).empty());
}

TEST(BlobStoreTest, AdoptMovesAStreamedUploadIntoPlace) {
  TempDir dir;
  auto store = BlobStore::Open(Options(dir.path()), 0);
  ASSERT_TRUE(store.ok()) << store.status();
  const std::string upload = (*store)->upload_dir() + "/upload-1";
  std::ofstream(upload) << "abc";
  // A wrong expected digest keeps nothing (the server removes its file).
  EXPECT_EQ((*store)
                ->Adopt(upload, 3, std::string(kAbcSha256), 1, std::string(kEmptySha256), 0)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  const auto adopted = (*store)->Adopt(upload, 3, std::string(kAbcSha256), 1, std::nullopt, 0);
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  EXPECT_FALSE(std::filesystem::exists(upload));
  EXPECT_EQ(*(*store)->Get(kAbcSha256), "abc");
  EXPECT_TRUE((*store)->IsOwner(1, kAbcSha256));
}

TEST(BlobStoreTest, GarbageIsCollectedPastTheGraceUnlessReferenced) {
  TempDir dir;
  auto store = BlobStore::Open(Options(dir.path()), 0);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Put("keep", std::nullopt, 1, 100).ok());
  ASSERT_TRUE((*store)->Put("drop", std::nullopt, 1, 100).ok());
  ASSERT_TRUE((*store)->Put("young", std::nullopt, 1, 5000).ok());
  const std::string keep = BlobStore::Sha256Hex("keep");
  auto referenced = [&](const std::string& sha) -> absl::StatusOr<bool> { return sha == keep; };
  // Grace 1000 µs: at 2000 the first two are old; "young" is not.
  const auto collected = (*store)->CollectGarbage(2000, referenced);
  ASSERT_TRUE(collected.ok()) << collected.status();
  EXPECT_EQ(collected->examined, 2u);
  EXPECT_EQ(collected->deleted, 1u);
  EXPECT_EQ(collected->bytes_freed, 4u);
  EXPECT_EQ((*store)->Get(BlobStore::Sha256Hex("drop")).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE((*store)->IsOwner(1, BlobStore::Sha256Hex("drop")));
  EXPECT_EQ((*store)->UsageOf(1), 4u + 5u);
  EXPECT_TRUE((*store)->Get(keep).ok());
  EXPECT_TRUE((*store)->Get(BlobStore::Sha256Hex("young")).ok());
}

TEST(BlobStoreTest, OpenRecordsBlobFilesTheIndexDoesNotKnowAsOwnerless) {
  TempDir dir;
  std::filesystem::create_directories(dir.File("ba"));
  std::ofstream(dir.File("ba/" + std::string(kAbcSha256))) << "abc";
  auto store = BlobStore::Open(Options(dir.path()), 0);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_FALSE((*store)->IsOwner(1, kAbcSha256));
  // It is garbage once old and unreferenced.
  const auto collected =
      (*store)->CollectGarbage(5000, [](const std::string&) -> absl::StatusOr<bool> { return false; });
  ASSERT_TRUE(collected.ok()) << collected.status();
  EXPECT_EQ(collected->deleted, 1u);
}

}  // namespace
}  // namespace ocx::api
