#include "src/api/web_assets.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "src/api/blob_store.h"

namespace ocx::api {
namespace {

namespace fs = std::filesystem;

// Content-hashed build outputs live here (web/build.mjs): safe to cache for a year.
constexpr std::string_view kImmutablePrefix = "/assets/";

// True when the If-None-Match header lists `etag` (or is "*"). Weak validators compare equal
// to strong ones for GET, as RFC 9110 13.1.2 says.
bool MatchesIfNoneMatch(std::string_view header, std::string_view etag) {
  size_t start = 0;
  while (start < header.size()) {
    size_t end = header.find(',', start);
    if (end == std::string_view::npos) end = header.size();
    std::string_view item = header.substr(start, end - start);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (item.starts_with("W/")) item.remove_prefix(2);
    if (item == "*" || item == etag) return true;
    start = end + 1;
  }
  return false;
}

absl::Status ReadWhole(const fs::path& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError("cannot read " + path.string());
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::DataLossError("error reading " + path.string());
  return absl::OkStatus();
}

}  // namespace

std::string_view WebAssets::ContentTypeFor(std::string_view file_name) {
  static constexpr std::pair<std::string_view, std::string_view> kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".webp", "image/webp"},
      {".woff2", "font/woff2"},
      {".txt", "text/plain; charset=utf-8"},
      {".webmanifest", "application/manifest+json"},
  };
  for (const auto& [extension, type] : kTypes) {
    if (file_name.ends_with(extension)) return type;
  }
  return "application/octet-stream";
}

absl::StatusOr<WebAssets> WebAssets::Load(const std::string& dir) {
  std::error_code ec;
  const fs::path root(dir);
  if (!fs::is_regular_file(root / "index.html", ec)) {
    return absl::NotFoundError(dir + " has no index.html (build the dashboard: "
                                     "scripts/build-web.sh)");
  }
  WebAssets assets;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
  if (ec) return absl::NotFoundError("cannot list " + dir + ": " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return absl::UnavailableError("cannot list " + dir + ": " + ec.message());
    if (it.depth() >= kDepthMax) {
      it.disable_recursion_pending();
      continue;
    }
    // symlink_status: a link is neither followed nor served.
    const fs::file_status status = it->symlink_status(ec);
    if (ec || !fs::is_regular_file(status)) continue;
    const std::string relative = fs::relative(it->path(), root, ec).generic_string();
    if (ec || relative.empty() || relative.starts_with("..")) continue;
    if (assets.by_path_.size() == kFilesMax) {
      return absl::ResourceExhaustedError(dir + " holds more than " +
                                          std::to_string(kFilesMax) + " files");
    }
    Asset asset;
    if (absl::Status read = ReadWhole(it->path(), &asset.body); !read.ok()) return read;
    assets.total_bytes_ += asset.body.size();
    if (assets.total_bytes_ > kBytesMax) {
      return absl::ResourceExhaustedError(dir + " holds more than " +
                                          std::to_string(kBytesMax >> 20) + " MiB");
    }
    const std::string path = "/" + relative;
    asset.content_type = std::string(ContentTypeFor(path));
    asset.cache_control = path.starts_with(kImmutablePrefix)
                              ? "public, max-age=31536000, immutable"
                              : "no-cache";
    // 128 bits of the content's SHA-256 tell versions apart.
    asset.etag = "\"" + BlobStore::Sha256Hex(asset.body).substr(0, 32) + "\"";
    assets.by_path_.emplace(path, std::move(asset));
  }
  return assets;
}

std::optional<HttpResponse> WebAssets::Serve(std::string_view path,
                                             std::string_view if_none_match) const {
  if (path == "/") path = "/index.html";
  const auto it = by_path_.find(path);
  if (it == by_path_.end()) return std::nullopt;
  const Asset& asset = it->second;
  HttpResponse response;
  response.content_type = asset.content_type;
  response.headers = {
      {"Cache-Control", asset.cache_control},
      {"ETag", asset.etag},
      {"X-Content-Type-Options", "nosniff"},
  };
  if (asset.content_type.starts_with("text/html")) {
    // The page loads only its own scripts and styles and talks only to this exchange.
    response.headers.emplace_back(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'");
    response.headers.emplace_back("Referrer-Policy", "no-referrer");
    response.headers.emplace_back("X-Frame-Options", "DENY");
  }
  if (!if_none_match.empty() && MatchesIfNoneMatch(if_none_match, asset.etag)) {
    response.status = 304;
    return response;
  }
  response.body = asset.body;
  return response;
}

}  // namespace ocx::api
