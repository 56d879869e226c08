#include "src/api/web_assets.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "src/base/testing/temp_dir.h"

namespace ocx::api {
namespace {

void WriteFile(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::string HeaderOf(const HttpResponse& response, std::string_view name) {
  for (const auto& [key, value] : response.headers) {
    if (key == name) return value;
  }
  return "";
}

TEST(WebAssetsTest, ADirectoryWithoutIndexIsNotADashboard) {
  base::testing::TempDir dir;
  WriteFile(dir.path() + "/assets/app.js", "x");
  const auto loaded = WebAssets::Load(dir.path());
  EXPECT_TRUE(absl::IsNotFound(loaded.status())) << loaded.status();
  EXPECT_TRUE(absl::IsNotFound(WebAssets::Load(dir.path() + "/missing").status()));
}

TEST(WebAssetsTest, ServesEveryFileByItsPathAndNothingElse) {
  base::testing::TempDir dir;
  WriteFile(dir.path() + "/index.html", "<html>");
  WriteFile(dir.path() + "/assets/app-x.js", "js");
  WriteFile(dir.path() + "/assets/fonts/a.woff2", "font");
  WriteFile(dir.path() + "/favicon.svg", "<svg/>");
  const auto loaded = WebAssets::Load(dir.path());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->file_count(), 4u);
  EXPECT_EQ(loaded->total_bytes(), 6u + 2u + 4u + 6u);

  const auto root = loaded->Serve("/", "");
  ASSERT_TRUE(root.has_value());
  EXPECT_EQ(root->body, "<html>");
  EXPECT_EQ(root->status, 200);
  const auto font = loaded->Serve("/assets/fonts/a.woff2", "");
  ASSERT_TRUE(font.has_value());
  EXPECT_EQ(font->content_type, "font/woff2");
  const auto icon = loaded->Serve("/favicon.svg", "");
  ASSERT_TRUE(icon.has_value());
  EXPECT_EQ(icon->content_type, "image/svg+xml");
  for (const char* path : {"", "/assets", "/assets/", "/index.htm", "assets/app-x.js",
                           "/assets/../index.html", "//index.html"}) {
    EXPECT_FALSE(loaded->Serve(path, "").has_value()) << path;
  }
}

TEST(WebAssetsTest, RevalidationAnswers304OnlyForTheCurrentContent) {
  base::testing::TempDir dir;
  WriteFile(dir.path() + "/index.html", "v1");
  const auto first = WebAssets::Load(dir.path());
  ASSERT_TRUE(first.ok());
  const std::string etag = HeaderOf(*first->Serve("/", ""), "ETag");
  ASSERT_EQ(etag.size(), 34u) << etag;  // 128 bits in hex, quoted.
  EXPECT_EQ(first->Serve("/", etag)->status, 304);
  EXPECT_TRUE(first->Serve("/", etag)->body.empty());
  EXPECT_EQ(first->Serve("/", "*")->status, 304);
  EXPECT_EQ(first->Serve("/", "\"a\" , " + etag)->status, 304);

  WriteFile(dir.path() + "/index.html", "v2");
  const auto second = WebAssets::Load(dir.path());
  ASSERT_TRUE(second.ok());
  const auto changed = second->Serve("/", etag);
  EXPECT_EQ(changed->status, 200);
  EXPECT_EQ(changed->body, "v2");
}

TEST(WebAssetsTest, TooManyFilesIsRefused) {
  base::testing::TempDir dir;
  WriteFile(dir.path() + "/index.html", "x");
  for (size_t i = 0; i < WebAssets::kFilesMax; ++i) {
    WriteFile(dir.path() + "/assets/f" + std::to_string(i) + ".txt", "x");
  }
  EXPECT_TRUE(absl::IsResourceExhausted(WebAssets::Load(dir.path()).status()));
}

TEST(WebAssetsTest, ContentTypesByExtension) {
  EXPECT_EQ(WebAssets::ContentTypeFor("a.html"), "text/html; charset=utf-8");
  EXPECT_EQ(WebAssets::ContentTypeFor("app-1.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(WebAssets::ContentTypeFor("app-1.css"), "text/css; charset=utf-8");
  EXPECT_EQ(WebAssets::ContentTypeFor("app-1.js.map"), "application/json");
  EXPECT_EQ(WebAssets::ContentTypeFor("x.bin"), "application/octet-stream");
  EXPECT_EQ(WebAssets::ContentTypeFor("js"), "application/octet-stream");
}

}  // namespace
}  // namespace ocx::api
