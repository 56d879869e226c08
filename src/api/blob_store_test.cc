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
    if (entry.is_regular_file()) {
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
  absl::StatusOr<BlobInfo> info = store->Put(data, std::nullopt);
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
  ASSERT_TRUE(store->Put("abc", kAbcSha256).ok());
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
  absl::StatusOr<BlobInfo> info = store->Put("", kEmptySha256);
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
  absl::StatusOr<BlobInfo> info = store->Put("abd", kAbcSha256);
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
  EXPECT_TRUE(store->Put(std::string(16, 'x'), std::nullopt).ok());
  absl::StatusOr<BlobInfo> big = store->Put(std::string(17, 'x'), std::nullopt);
  EXPECT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted);
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
    EXPECT_EQ(store->Put("abc", digest).status().code(), absl::StatusCode::kInvalidArgument)
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
  ASSERT_TRUE(store->Put("abc", std::nullopt).ok());
  absl::StatusOr<BlobInfo> again = store->Put("abc", kAbcSha256);
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
    ASSERT_TRUE(store->Put("abc", std::nullopt).ok());
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
        if (!store->Put(shared, std::nullopt).ok()) ++failures[t];
        const std::string own = "thread " + std::to_string(t) + " round " + std::to_string(i);
        if (!store->Put(own, std::nullopt).ok()) ++failures[t];
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

}  // namespace
}  // namespace ocx::api
