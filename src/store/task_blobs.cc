#include "src/store/task_blobs.h"

#include <string>

#include "src/base/json.h"
#include "src/base/sha256.h"

namespace ocx::store {
namespace {

using base::Json;

// The document as an object, or null when it is not JSON or not an object.
bool ParseObject(std::string_view text, Json* out) {
  if (!base::ParseJsonStrict(text, out).ok() || !out->is_object()) return false;
  return true;
}

// `object[key]` when `object` has it, else null. Never inserts, never throws.
const Json* Field(const Json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

// Appends `holder.sha256` as `role` when `holder` is an object whose `sha256` is a digest.
void AddDigestOf(const Json* holder, BlobRole role, std::vector<NamedBlob>* out) {
  if (holder == nullptr) return;
  const Json* digest = Field(*holder, "sha256");
  if (digest == nullptr) return;
  const std::string* text = digest->get_ptr<const std::string*>();
  if (text == nullptr || !base::IsSha256Hex(*text)) return;
  out->push_back(NamedBlob{*text, role});
}

// The digests of an array of objects with a `sha256` each, when `array` is an array of at
// most `entries_max` entries (false otherwise: the document names nothing).
bool AddDigestsOfArray(const Json* array, size_t entries_max, BlobRole role,
                       std::vector<NamedBlob>* out) {
  if (array == nullptr || !array->is_array()) return true;  // Absent or not a list: none.
  if (array->size() > entries_max) return false;
  for (const Json& entry : *array) AddDigestOf(&entry, role, out);
  return true;
}

}  // namespace

std::string_view BlobRoleName(BlobRole role) {
  switch (role) {
    case BlobRole::kInput:
      return "input";
    case BlobRole::kStdout:
      return "stdout";
    case BlobRole::kStderr:
      return "stderr";
    case BlobRole::kOutput:
      return "output";
  }
  return "unknown";
}

std::vector<NamedBlob> BlobsOfTaskSpec(std::string_view spec) {
  std::vector<NamedBlob> blobs;
  Json doc;
  if (!ParseObject(spec, &doc)) return {};
  if (!AddDigestsOfArray(Field(doc, "inputs"), kTaskSpecInputsMax, BlobRole::kInput, &blobs)) {
    return {};
  }
  return blobs;
}

std::vector<NamedBlob> BlobsOfTaskResult(std::string_view result) {
  std::vector<NamedBlob> blobs;
  Json doc;
  if (result.empty() || !ParseObject(result, &doc)) return {};
  AddDigestOf(Field(doc, "stdout"), BlobRole::kStdout, &blobs);
  AddDigestOf(Field(doc, "stderr"), BlobRole::kStderr, &blobs);
  if (!AddDigestsOfArray(Field(doc, "outputs"), kTaskResultOutputsMax, BlobRole::kOutput, &blobs)) {
    return {};
  }
  return blobs;
}

}  // namespace ocx::store
