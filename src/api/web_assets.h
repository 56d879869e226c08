// The web dashboard's static files (web/dist, built by scripts/build-web.sh), served by the
// exchange itself at "/" and "/assets/...": no second server.
//
// Every file is read into memory once, at start-up. A request is a lookup in that map, so a
// path can never name a file outside the directory (no "..", no symlinks followed), and a
// rebuilt dashboard is served after a restart. The build gives asset files content-hashed
// names, so they are cached for a year ("immutable"); index.html must be revalidated
// ("no-cache") and carries an ETag, answered with 304 when it did not change.
// Thread-safety: immutable after Load; Serve may be called from any thread.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "src/api/http_types.h"

namespace ocx::api {

class WebAssets {
 public:
  // Bounds on what Load reads: a dashboard is a few files, not a file server.
  static constexpr size_t kFilesMax = 1000;
  static constexpr size_t kBytesMax = 64u << 20;
  static constexpr int kDepthMax = 8;

  // Reads every regular file under `dir` (symlinks are skipped). NotFound when `dir` has no
  // index.html; ResourceExhausted past the bounds above.
  static absl::StatusOr<WebAssets> Load(const std::string& dir);

  // The response to a GET or HEAD of `path` ("/" is index.html), honouring If-None-Match;
  // nullopt when no file has this path.
  std::optional<HttpResponse> Serve(std::string_view path, std::string_view if_none_match) const;

  // The MIME type served for a file name, by its extension (application/octet-stream when
  // unknown).
  static std::string_view ContentTypeFor(std::string_view file_name);

  size_t file_count() const { return by_path_.size(); }
  size_t total_bytes() const { return total_bytes_; }

 private:
  struct Asset {
    std::string content_type;
    std::string cache_control;
    std::string etag;  // Quoted, from the content's SHA-256.
    std::string body;
  };
  std::map<std::string, Asset, std::less<>> by_path_;  // "/index.html", "/assets/app-X.js"
  size_t total_bytes_ = 0;
};

}  // namespace ocx::api
