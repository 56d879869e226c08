// Fuzz harness: job files (src/cli/job_file.h, docs/formats/job-file.md), which `ocx run`
// reads from the user's disk and which `ocx demo` and tests write.
//
// The first input byte picks the format (even: TOML, odd: JSON); the rest is the file's text.
// Properties checked: ParseJobToml and ParseJobJson never crash or throw, an error names the
// file, and a file that parses passes CheckJobComplete or fails it with a message naming the
// file; what the parser accepted is within the documented bounds.
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "fuzz/fuzz_util.h"
#include "src/base/assert.h"
#include "src/cli/job_file.h"

namespace {

// Whether the error message starts with the file's name.
bool NamesSource(const absl::Status& status, std::string_view source) {
  return std::string_view(status.message().data(), status.message().size()).starts_with(source);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ocx;
  if (size == 0) return 0;
  const bool json = (data[0] & 1) != 0;
  const std::string_view text = fuzz::AsText(data + 1, size - 1);
  const std::string_view source = json ? "job.json" : "job.toml";
  const absl::StatusOr<cli::JobFile> job =
      json ? cli::ParseJobJson(text, source) : cli::ParseJobToml(text, source);
  if (!job.ok()) {
    OCX_ASSERT(job.status().code() == absl::StatusCode::kInvalidArgument);
    OCX_ASSERT(NamesSource(job.status(), source));
    return 0;
  }
  OCX_ASSERT(job->slots >= 1 && job->slots <= cli::kJobSlotsMax);
  OCX_ASSERT(job->tasks >= 1 && job->tasks <= cli::kJobTasksMax);
  OCX_ASSERT(job->max_hours >= 1 && job->max_hours <= cli::kJobHoursMax);
  OCX_ASSERT(!job->market.empty());
  OCX_ASSERT(job->constraints.size() <= cli::kJobConstraintsBytesMax);
  for (const std::string& output : job->outputs) OCX_ASSERT(cli::IsSafeOutputPath(output));
  for (size_t i = 0; i < job->env.size(); ++i) {
    OCX_ASSERT(cli::IsEnvName(job->env[i].first));
    OCX_ASSERT(i == 0 || job->env[i - 1].first < job->env[i].first);
  }
  const absl::Status complete = cli::CheckJobComplete(*job, source);
  OCX_ASSERT(complete.ok() || NamesSource(complete, source));
  // What the parser accepted, CheckJobComplete refuses only for what may still come from
  // flags: a missing command or max price.
  if (!job->command.empty() && !job->max_price.empty()) {
    OCX_ASSERT_MSG(complete.ok(), "CheckJobComplete refuses what the parser accepted");
  }
  return 0;
}
