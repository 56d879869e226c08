// Fuzz harness: task specs (task_spec.h, docs/formats/task.md), which buyers send
// to the exchange (POST /v1/leases/{id}/task, jobs) and which agents parse before running.
//
// Properties checked: ParseTaskSpec never crashes or throws; a spec that parses has a
// canonical form (TaskSpecToJson) that parses back to an equal spec, whose own canonical form
// is the same text, within the size bound the agent enforces (the exchange journals that
// form, and the agent must accept it).
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "fuzz/fuzz_util.h"
#include "src/base/assert.h"

// The task spec is moving from src/agent (ocx::agent) to src/protocol (ocx::protocol).
#if __has_include("src/protocol/task_spec.h")
#include "src/protocol/task_spec.h"
namespace task_spec = ocx::protocol;
#else
#include "src/agent/task_spec.h"
namespace task_spec = ocx::agent;
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::StatusOr<task_spec::TaskSpec> spec =
      task_spec::ParseTaskSpec(ocx::fuzz::AsText(data, size));
  if (!spec.ok()) {
    OCX_ASSERT(spec.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  const std::string canonical = task_spec::TaskSpecToJson(*spec).dump();
  OCX_ASSERT_MSG(canonical.size() <= task_spec::kTaskSpecBytesMax,
                 "the canonical form is longer than a spec may be");
  const absl::StatusOr<task_spec::TaskSpec> again = task_spec::ParseTaskSpec(canonical);
  OCX_ASSERT_MSG(again.ok(), "the canonical form does not parse");
  OCX_ASSERT_MSG(*again == *spec, "the canonical form parses to another spec");
  OCX_ASSERT(task_spec::TaskSpecToJson(*again).dump() == canonical);
  return 0;
}
