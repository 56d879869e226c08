// Blobs: content-addressed uploads (streamed to disk as they arrive) and downloads (streamed
// from the file), with an owner, per-account quotas and reads limited to who may see them
// (docs/formats/blobs.md).
#include <sys/stat.h>

#include "src/api/api.h"
#include "src/api/fields.h"
#include "src/base/sha256.h"

namespace ocx::api {
namespace {

HttpResponse BadDigest() {
  return Refuse(Refusal::kBadRequest, "A blob is named by its SHA-256: 64 lowercase hex digits.");
}

HttpResponse BlobError(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return Refuse(Refusal::kDigestMismatch);
    case absl::StatusCode::kResourceExhausted:
      return Refuse(Refusal::kBlobQuotaExceeded, std::string(status.message()));
    case absl::StatusCode::kOutOfRange:
      return Refuse(Refusal::kBodyTooLarge, std::string(status.message()));
    case absl::StatusCode::kUnavailable:
      return Refuse(Refusal::kInsufficientStorage, std::string(status.message()));
    default:
      return InternalError("a blob upload failed: " + status.ToString());
  }
}

HttpResponse Stored(const BlobInfo& info) {
  return JsonResponse(201, Json{{"sha256", info.sha256}, {"size", info.size}});
}

// Stores the request's body (streamed to a file by the server, or in memory when the API is
// driven directly) as a blob owned by the caller; `expected`: the digest in the path.
void Store(Api& api, const CallPtr& call, std::optional<std::string> expected) {
  BlobStore* blobs = api.deps().blobs;
  const core::AccountId owner = call->caller->id;
  const base::Clock* clock = api.deps().clock;
  api.OnWorker(call, [call, blobs, owner, expected, clock] {
    absl::StatusOr<BlobInfo> info;
    if (call->request.upload) {
      const UploadedFile& upload = *call->request.upload;
      info = blobs->Adopt(upload.path, upload.size, upload.sha256, owner, expected,
                          clock->NowMicros());
    } else {
      info = blobs->Put(call->request.body, expected, owner, clock->NowMicros());
    }
    if (!info.ok()) return BlobError(info.status());
    return Stored(*info);
  });
}

void UploadBlob(Api& api, const CallPtr& call) { Store(api, call, std::nullopt); }

void PutBlob(Api& api, const CallPtr& call) {
  const std::string digest = call->params[0];
  if (!base::IsSha256Hex(digest)) return call->Respond(BadDigest());
  Store(api, call, digest);
}

void GetBlob(Api& api, const CallPtr& call) {
  const std::string digest = call->params[0];
  if (!base::IsSha256Hex(digest)) return call->Respond(BadDigest());
  BlobStore* blobs = api.deps().blobs;
  store::Store* store = api.deps().store;
  const Caller caller = call->caller;
  const bool head = call->request.method == "HEAD";
  const int64_t now = api.deps().clock->NowMicros();
  // The store must have every task the caller could have seen (a grant comes from a task).
  api.ReadStore(call, [blobs, store, caller, digest, head, now] {
    const bool uploaded = blobs->IsOwner(caller->id, digest);
    bool granted = false;
    if (!uploaded && !IsOperator(caller)) {
      const auto found = store->BlobGranted(digest, caller->id);
      if (!found.ok()) return StoreError(found.status());
      granted = *found;
    }
    // A blob the caller may not read is as unknown as one that does not exist.
    if (!MayReadBlob(caller, uploaded, granted)) return Refuse(Refusal::kUnknownBlob);
    auto file = blobs->OpenBlob(digest);
    if (!file.ok()) return Refuse(Refusal::kUnknownBlob);
    struct stat info;
    if (::fstat(file->get(), &info) != 0) return InternalError("fstat of a blob failed");
    blobs->Touch(digest, now);
    HttpResponse response;
    response.content_type = "application/octet-stream";
    // Content-addressed: the bytes behind a digest never change.
    response.headers.emplace_back("Cache-Control", "private, max-age=31536000, immutable");
    response.headers.emplace_back("ETag", "\"" + digest + "\"");
    if (head) {
      response.headers.emplace_back("X-Blob-Size", std::to_string(info.st_size));
    } else {
      response.body_file = std::make_shared<base::UniqueFd>(std::move(*file));
      response.body_file_size = static_cast<uint64_t>(info.st_size);
    }
    return response;
  });
}

}  // namespace

void AddBlobRoutes(std::vector<Route>* routes) {
  routes->insert(routes->end(),
                 {
                     {"POST", "/v1/blobs", "Upload a blob; returns its SHA-256", Auth::kAccount,
                      201, Body::kBlob, false, &UploadBlob},
                     {"PUT", "/v1/blobs/{sha256}", "Upload a blob checked against its SHA-256",
                      Auth::kAccount, 201, Body::kBlob, false, &PutBlob},
                     {"GET", "/v1/blobs/{sha256}",
                      "Download a blob you uploaded or a task you see names (also HEAD)",
                      Auth::kAccount, 200, Body::kNone, false, &GetBlob},
                 });
}

}  // namespace ocx::api
