// The dashboard's files served by `ocx exchange` itself ([web] dir, --web-dir), and
// GET /v1/me, which the dashboard signs in with. The browser tests of the dashboard are
// web/tests (tests/integration/web_test.sh).
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/integration/api_test_util.h"

namespace ocx::api_test {
namespace {

void WriteFile(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

class ApiDashboardTest : public ::testing::Test {
 protected:
  // An exchange serving `web_dir` (which the test fills first, or leaves missing).
  void StartServing(const std::string& web_dir) {
    server_ = std::make_unique<ExchangeProcess>(dir_.path());
    server_->SetExtraArguments({"--web-dir", web_dir});
    const absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }
  void TearDown() override {
    if (server_ && server_->running()) {
      EXPECT_EQ(server_->Stop(), 0) << server_->LogTail();
    }
  }

  base::testing::TempDir dir_{"ocx_dashboard_it"};
  std::unique_ptr<ExchangeProcess> server_;
};

TEST_F(ApiDashboardTest, ServesTheBuiltFilesWithTypesAndCaching) {
  const std::string web = dir_.path() + "/web";
  const std::string index = "<!doctype html><title>ocx</title><script src=\"/assets/app-1a2b.js\">";
  WriteFile(web + "/index.html", index);
  WriteFile(web + "/assets/app-1a2b.js", "console.log('ocx');");
  WriteFile(web + "/assets/app-1a2b.css", "body{margin:0}");
  WriteFile(dir_.path() + "/secret.txt", "not for the web");
  std::filesystem::create_symlink(dir_.path() + "/secret.txt", web + "/assets/link.txt");
  ASSERT_NO_FATAL_FAILURE(StartServing(web));
  ApiClient anyone(server_->url());

  const Reply page = anyone.Raw("GET", "/", "", {}, "");
  ASSERT_EQ(page.status, 200) << page;
  EXPECT_EQ(page.raw, index);
  EXPECT_EQ(page.Header("content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(page.Header("cache-control"), "no-cache");
  EXPECT_NE(page.Header("content-security-policy").find("connect-src 'self'"), std::string::npos);
  EXPECT_EQ(page.Header("x-content-type-options"), "nosniff");
  const std::string etag = page.Header("etag");
  ASSERT_FALSE(etag.empty());
  EXPECT_EQ(anyone.Raw("GET", "/index.html", "", {}, "").raw, index);

  // Revalidation: the same ETag answers 304 without a body; another one the whole page.
  const Reply unchanged = anyone.Raw("GET", "/", "", {{"If-None-Match", etag}}, "");
  EXPECT_EQ(unchanged.status, 304) << unchanged;
  EXPECT_TRUE(unchanged.raw.empty());
  const Reply weak = anyone.Raw("GET", "/", "", {{"If-None-Match", "\"x\", W/" + etag}}, "");
  EXPECT_EQ(weak.status, 304) << weak;
  EXPECT_EQ(anyone.Raw("GET", "/", "", {{"If-None-Match", "\"other\""}}, "").status, 200);

  const Reply script = anyone.Raw("GET", "/assets/app-1a2b.js", "", {}, "");
  ASSERT_EQ(script.status, 200) << script;
  EXPECT_EQ(script.raw, "console.log('ocx');");
  EXPECT_EQ(script.Header("content-type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(script.Header("cache-control"), "public, max-age=31536000, immutable");
  const Reply style = anyone.Raw("HEAD", "/assets/app-1a2b.css", "", {}, "");
  EXPECT_EQ(style.status, 200) << style;
  EXPECT_EQ(style.Header("content-type"), "text/css; charset=utf-8");
  EXPECT_TRUE(style.raw.empty());

  // Nothing outside the directory, no symlink, no API path: a JSON 404.
  for (const char* path : {"/assets/link.txt", "/../secret.txt", "/assets/../../secret.txt",
                           "/assets/%2e%2e/%2e%2e/secret.txt", "/nope.js", "/v1/nope"}) {
    const Reply missing = anyone.Raw("GET", path, "", {}, "");
    SCOPED_TRACE(path);
    EXPECT_TRUE(missing.status == 404 || missing.status == 400) << missing;
    EXPECT_TRUE(missing.IsErrorBody()) << missing;
    EXPECT_EQ(missing.raw.find("not for the web"), std::string::npos);
  }
  // The dashboard never shadows the API.
  EXPECT_EQ(anyone.Call("GET", "/healthz").status, 200);
  EXPECT_EQ(anyone.Call("POST", "/", Json::object()).status, 404);
}

TEST_F(ApiDashboardTest, WithoutABuiltDashboardTheApiStillRuns) {
  ASSERT_NO_FATAL_FAILURE(StartServing(dir_.path() + "/not-built"));
  ApiClient anyone(server_->url());
  const Reply page = anyone.Call("GET", "/");
  EXPECT_EQ(page.status, 404) << page;
  EXPECT_EQ(page.ErrorCode(), "dashboard_not_built");
  EXPECT_NE(page.body["error"]["message"].get<std::string>().find("build-web.sh"),
            std::string::npos)
      << page;
  EXPECT_EQ(anyone.Call("GET", "/v1/markets").status, 200);
}

TEST_F(ApiDashboardTest, MeIsTheCallersOwnAccount) {
  ASSERT_NO_FATAL_FAILURE(StartServing(dir_.path() + "/not-built"));
  ApiClient op(server_->url(), server_->operator_token());
  const AccountHandle alice = CreateAccount(op, "consumer", "alice");
  const AccountHandle bob = CreateAccount(op, "consumer", "bob");
  Deposit(op, alice.id, "12.5");

  ApiClient as_alice(server_->url(), alice.token);
  const Json me = as_alice.Expect(200, "GET", "/v1/me");
  EXPECT_EQ(me["account"]["id"], alice.id);
  EXPECT_EQ(me["account"]["name"], alice.name);
  EXPECT_EQ(me["account"]["balances"]["available"], "12.5");
  ApiClient as_bob(server_->url(), bob.token);
  EXPECT_EQ(as_bob.Expect(200, "GET", "/v1/me")["account"]["id"], bob.id);

  ApiClient anyone(server_->url());
  EXPECT_EQ(anyone.Call("GET", "/v1/me").ErrorCode(), "unauthenticated");
  ApiClient forged(server_->url(), "ocx_" + std::string(64, 'a'));
  EXPECT_EQ(forged.Call("GET", "/v1/me").status, 401);
}

}  // namespace
}  // namespace ocx::api_test
