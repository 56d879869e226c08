#include "src/agent/task_runner.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <memory>
#include <set>

#include "absl/status/status.h"
#include "src/base/assert.h"
#include "src/base/errno_status.h"
#include "src/base/sha256.h"
#include "src/base/status.h"
#include "src/base/strings.h"
#include "src/base/unique_fd.h"
#include "src/base/utf8.h"

namespace ocx::agent {

using base::Cat;
using base::ErrnoStatus;
using base::UniqueFd;
using nlohmann::json;

namespace {

// ---- Text ------------------------------------------------------------------------------

// `s` made fit for a one-line message: valid UTF-8 (bad bytes become '?'), control
// characters as spaces, at most `bytes_max` bytes (cut at a character, marked "...").
std::string Printable(std::string_view s, size_t bytes_max) {
  OCX_ASSERT(bytes_max >= 3);
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const size_t n = base::Utf8CharLength(s, i);
    if (n == 0) {
      out.push_back('?');
      i += 1;
    } else if (n == 1 && (static_cast<unsigned char>(s[i]) < 0x20 || s[i] == 0x7F)) {
      out.push_back(' ');
      i += 1;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
    if (out.size() > 2 * bytes_max) break;  // enough to know it gets cut
  }
  if (out.size() <= bytes_max) return out;
  size_t cut = bytes_max - 3;
  while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
  out.resize(cut);
  out.append("...");
  return out;
}

// A path or name from outside, quoted for a message.
std::string Quoted(std::string_view s) { return Cat("'", Printable(s, 200), "'"); }

absl::Status Bad(const std::string& message) { return absl::InvalidArgumentError(message); }

}  // namespace

absl::StatusOr<std::string> Sha256OfFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, "open", path);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "stat", path);
  if (!S_ISREG(st.st_mode)) return absl::FailedPreconditionError(Cat(path, " is not a file"));
  return base::Sha256HexOfFd(fd.get());
}

namespace {

// Room in a result for everything but `outputs` and `missing_outputs`: status, six numbers
// of at most 20 characters, two blob objects (~100 bytes each), the keys, and a message of
// kTaskMessageBytesMax bytes that JSON escaping may double (quotes, backslashes).
constexpr size_t kResultFixedReserve = 4096;
static_assert(kResultFixedReserve > 2 * kTaskMessageBytesMax + 1024);
constexpr size_t kResultListsBudget = kTaskResultBytesMax - kResultFixedReserve;

// The result being built; ToJson() makes the document.
struct Outcome {
  std::string status = "error";
  int exit_code = -1;
  int term_signal = 0;
  int64_t wall_ms = 0;
  int64_t cpu_ms = 0;
  int64_t peak_memory_mib = 0;
  json stdout_blob = nullptr;
  json stderr_blob = nullptr;
  json outputs = json::array();
  std::vector<std::string> missing;  // spec order
  std::string message;               // the main sentence
  std::vector<std::string> notes;    // appended to the message
  size_t list_bytes = 0;             // what `outputs` takes of kResultListsBudget

  void Error(std::string why) {
    status = "error";
    message = std::move(why);
  }

  json ToJson() const {
    json j = json::object();
    j["status"] = status;
    j["exit_code"] = exit_code;
    j["term_signal"] = term_signal;
    j["wall_ms"] = wall_ms;
    j["cpu_ms"] = cpu_ms;
    j["peak_memory_mib"] = peak_memory_mib;
    j["stdout"] = stdout_blob;
    j["stderr"] = stderr_blob;
    j["outputs"] = outputs;
    json missing_json = json::array();
    size_t bytes = list_bytes;
    size_t missing_left_out = 0;
    for (const std::string& path : missing) {
      json entry = path;
      const size_t cost = entry.dump().size() + 1;
      if (bytes + cost > kResultListsBudget) {
        ++missing_left_out;
        continue;
      }
      bytes += cost;
      missing_json.push_back(std::move(entry));
    }
    j["missing_outputs"] = std::move(missing_json);
    std::string text = message;
    for (const std::string& note : notes) text += Cat("; ", note);
    if (missing_left_out > 0) {
      text +=
          Cat("; ", missing_left_out, " missing outputs are not listed (the result is limited to ",
              kTaskResultBytesMax, " bytes)");
    }
    j["message"] = Printable(text, kTaskMessageBytesMax);
    OCX_ASSERT(j.dump().size() <= kTaskResultBytesMax);
    return j;
  }
};

// A spec built in code gets the checks of one that came as JSON: it must be what
// ParseTaskSpec makes of its canonical form (so also valid UTF-8, env sorted and unique).
absl::Status CheckSpec(const TaskSpec& spec) {
  const std::string text =
      TaskSpecToJson(spec).dump(-1, ' ', false, json::error_handler_t::replace);
  absl::StatusOr<TaskSpec> parsed = ParseTaskSpec(text);
  if (!parsed.ok()) return Bad(Cat("bad task spec: ", parsed.status().message()));
  if (*parsed != spec) {
    return Bad("bad task spec: a string is not UTF-8, or env names are not unique and sorted");
  }
  return absl::OkStatus();
}

// As root the sandbox runs the job (and bubblewrap) as an unprivileged uid, which must pass
// through every folder above its work directory (JobSpec::work_dir). Checked up front:
// otherwise bubblewrap fails with exit code 1, which would look like the job's failure.
// Conservative: asks for o+x, which is what a dedicated job uid without groups needs.
absl::Status CheckReachableByJob(const std::string& work_root) {
  if (::geteuid() != 0) return absl::OkStatus();
  std::vector<std::string> dirs = {"/"};
  for (size_t slash = work_root.find('/', 1);; slash = work_root.find('/', slash + 1)) {
    dirs.push_back(work_root.substr(0, slash));
    if (slash == std::string::npos) break;
  }
  for (const std::string& dir : dirs) {
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0) return ErrnoStatus(errno, Cat("stat ", dir));
    if ((st.st_mode & S_IXOTH) == 0) {
      return absl::FailedPreconditionError(
          Cat("the job's uid cannot pass through ", dir, " (it needs mode o+x)"));
    }
  }
  return absl::OkStatus();
}

bool Cancelled(const TaskRunOptions& options) {
  return options.cancel != nullptr && options.cancel->cancelled();
}

absl::Status MakeDir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0) return ErrnoStatus(errno, Cat("mkdir ", path));
  // The umask may have taken bits away.
  if (::chmod(path.c_str(), mode) != 0) return ErrnoStatus(errno, Cat("chmod ", path));
  return absl::OkStatus();
}

std::vector<std::string_view> Components(std::string_view path) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    const size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(path.substr(start));
      return out;
    }
    out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
}

// Opens the directory that holds `path` (a safe relative path) below `root_fd`, one
// component at a time and never through a symbolic link. With `create`, missing directories
// are made (mode 0755).
absl::StatusOr<UniqueFd> OpenParent(int root_fd, std::string_view path, bool create) {
  const std::vector<std::string_view> components = Components(path);
  UniqueFd dir(::fcntl(root_fd, F_DUPFD_CLOEXEC, 0));
  if (!dir.valid()) return ErrnoStatus(errno, "dup");
  for (size_t i = 0; i + 1 < components.size(); ++i) {
    const std::string name(components[i]);
    if (create && ::mkdirat(dir.get(), name.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, Cat("mkdir ", name));
    }
    UniqueFd child(
        ::openat(dir.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!child.valid()) return ErrnoStatus(errno, Cat("open directory ", name));
    if (create && ::fchmod(child.get(), 0755) != 0) return ErrnoStatus(errno, Cat("chmod ", name));
    dir = std::move(child);
  }
  return dir;
}

std::string BaseName(std::string_view path) {
  const size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

// Fetches one input into the private fetch directory, checks it and moves it into place
// below the job's directory; the job never sees a partial or unchecked input.
absl::Status PlaceInput(const TaskInput& input, size_t index, const TaskBlobs& blobs,
                        const std::string& fetch_dir, int fetch_fd, int work_fd) {
  const std::string name = Cat("input-", index);
  const std::string fetch_path = Cat(fetch_dir, "/", name);
  if (absl::Status s = blobs.fetch(input.sha256, fetch_path); !s.ok()) {
    return absl::Status(s.code(), Cat("fetching input ", Quoted(input.path), " (blob ",
                                      input.sha256, ") failed: ", s.message()));
  }
  UniqueFd fd(::openat(fetch_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) {
    return ErrnoStatus(errno, Cat("opening the fetched input ", Quoted(input.path)));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "stat a fetched input");
  if (!S_ISREG(st.st_mode)) {
    return absl::DataLossError(
        Cat("fetching input ", Quoted(input.path), " did not give a regular file"));
  }
  if (input.size.has_value() && st.st_size != *input.size) {
    return absl::DataLossError(Cat("input ", Quoted(input.path), " is ", st.st_size,
                                   " bytes, but the spec says ", *input.size));
  }
  OCX_ASSIGN_OR_RETURN(const std::string digest, base::Sha256HexOfFd(fd.get()));
  if (digest != input.sha256) {
    return absl::DataLossError(Cat("input ", Quoted(input.path),
                                   " does not match its digest: ", "the fetched bytes have sha256 ",
                                   digest, ", not ", input.sha256));
  }
  if (::fchmod(fd.get(), input.executable ? 0755 : 0644) != 0) {
    return ErrnoStatus(errno, Cat("chmod input ", Quoted(input.path)));
  }
  absl::StatusOr<UniqueFd> parent = OpenParent(work_fd, input.path, /*create=*/true);
  if (!parent.ok()) {
    return absl::Status(
        parent.status().code(),
        Cat("making the folders of input ", Quoted(input.path), ": ", parent.status().message()));
  }
  const std::string base = BaseName(input.path);
  if (::renameat2(fetch_fd, name.c_str(), parent->get(), base.c_str(), RENAME_NOREPLACE) != 0) {
    return ErrnoStatus(errno, Cat("placing input ", Quoted(input.path)));
  }
  return absl::OkStatus();
}

// The environment of the job: the sandbox's defaults, then the spec's (which win).
std::vector<std::pair<std::string, std::string>> JobEnv(const TaskSpec& spec) {
  std::vector<std::pair<std::string, std::string>> env = sandbox::DefaultJobEnv();
  for (const auto& variable : spec.env) {
    auto it = std::find_if(env.begin(), env.end(),
                           [&](const auto& e) { return e.first == variable.first; });
    if (it != env.end()) {
      it->second = variable.second;
    } else {
      env.push_back(variable);
    }
  }
  return env;
}

// Uploads one log file, at most blob_bytes_max of it, from the file opened here; its blob
// object for the result. A refusal by the exchange (ResourceExhausted) passes through.
absl::StatusOr<json> UploadLog(const TaskBlobs& blobs, const std::string& path, bool truncated) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, "open", path);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "stat", path);
  if (!S_ISREG(st.st_mode)) return absl::InternalError(Cat(path, " is not a file"));
  const uint64_t size = std::min<uint64_t>(static_cast<uint64_t>(st.st_size), blobs.blob_bytes_max);
  OCX_ASSIGN_OR_RETURN(const std::string sha256, blobs.upload(fd.get(), size));
  if (!base::IsSha256Hex(sha256)) {
    return absl::InternalError("the upload gave back something that is not a sha256 digest");
  }
  json blob = json::object();
  blob["sha256"] = sha256;
  blob["size"] = static_cast<int64_t>(size);
  blob["truncated"] = truncated || size < static_cast<uint64_t>(st.st_size);
  return blob;
}

// "'a', 'b', 'c' and 2 more": names for a message, the first kTaskMessageNamesMax of them.
std::string NameList(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < kTaskMessageNamesMax; ++i) {
    out += Cat(i == 0 ? "" : ", ", Quoted(names[i]));
  }
  if (names.size() > kTaskMessageNamesMax) {
    out += Cat(" and ", names.size() - kTaskMessageNamesMax, " more");
  }
  return out;
}

// What the job left under its outputs: regular files only, found without following links.
struct Collected {
  std::set<std::string> files;       // relative paths, sorted
  std::vector<std::string> missing;  // spec entries that are not a file or a folder
  size_t left_out = 0;               // files (or folders) passed over: bounds, names
  size_t visited = 0;                // directory entries looked at
  bool walk_stopped = false;         // kTaskOutputEntriesVisitedMax was reached
};

void Walk(int dir_fd, const std::string& prefix, int depth, Collected& c) {
  int dup_fd = ::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return;
  DIR* dir = ::fdopendir(dup_fd);
  if (dir == nullptr) {
    ::close(dup_fd);
    return;
  }
  std::vector<std::string> names;
  while (struct dirent* entry = ::readdir(dir)) {
    const std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    if (++c.visited > kTaskOutputEntriesVisitedMax) {
      c.walk_stopped = true;
      break;
    }
    names.emplace_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const std::string path = Cat(prefix, "/", name);
    struct stat st;
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    const bool representable = base::IsValidUtf8(name) && path.size() <= kTaskPathBytesMax;
    if (S_ISREG(st.st_mode)) {
      if (!representable || c.files.size() >= kTaskOutputFilesMax) {
        ++c.left_out;
      } else {
        c.files.insert(path);
      }
    } else if (S_ISDIR(st.st_mode)) {
      if (!representable || depth + 1 > kTaskOutputDepthMax) {
        ++c.left_out;
        continue;
      }
      UniqueFd child(
          ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!child.valid()) {
        ++c.left_out;
        continue;
      }
      Walk(child.get(), path, depth + 1, c);
    }
    // Anything else (symbolic links, FIFOs, sockets, devices) is not an output.
    if (c.walk_stopped) return;
  }
}

Collected CollectOutputs(int work_fd, const std::vector<std::string>& outputs) {
  Collected c;
  for (const std::string& output : outputs) {
    absl::StatusOr<UniqueFd> parent = OpenParent(work_fd, output, /*create=*/false);
    const std::string base = BaseName(output);
    struct stat st;
    if (!parent.ok() || ::fstatat(parent->get(), base.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      c.missing.push_back(output);
      continue;
    }
    if (S_ISREG(st.st_mode)) {
      if (c.files.size() >= kTaskOutputFilesMax) {
        ++c.left_out;
      } else {
        c.files.insert(output);
      }
    } else if (S_ISDIR(st.st_mode) && !c.walk_stopped) {
      UniqueFd dir(
          ::openat(parent->get(), base.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!dir.valid()) {
        c.missing.push_back(output);
        continue;
      }
      Walk(dir.get(), output, 0, c);
    } else if (!S_ISDIR(st.st_mode)) {
      c.missing.push_back(output);  // a symbolic link, FIFO, ...: not brought back
    }
  }
  return c;
}

// Uploads the collected files that fit in the result, in path order, each from the file
// opened and checked here. Files over the blob limit, and files the exchange refuses for
// their size or the account's quota, are left out and named in the message.
absl::Status UploadOutputs(const TaskBlobs& blobs, int work_fd, const Collected& c, Outcome& out) {
  size_t left_out = c.left_out;
  size_t position = 0;
  std::vector<std::string> over_limit;
  std::vector<std::string> refused;
  std::string refusal;  // The exchange's first reason.
  for (const std::string& path : c.files) {
    ++position;
    json entry = json::object();
    entry["path"] = path;
    entry["sha256"] = std::string(64, '0');
    entry["size"] = std::numeric_limits<int64_t>::max();
    const size_t cost = entry.dump().size() + 1;
    if (out.list_bytes + cost > kResultListsBudget) {
      left_out += c.files.size() - position + 1;
      break;
    }
    absl::StatusOr<UniqueFd> parent = OpenParent(work_fd, path, /*create=*/false);
    if (!parent.ok()) return parent.status();
    const std::string base = BaseName(path);
    UniqueFd fd(
        ::openat(parent->get(), base.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat st;
    if (!fd.valid() || ::fstat(fd.get(), &st) != 0) {
      return ErrnoStatus(errno, Cat("open output ", Quoted(path)));
    }
    if (!S_ISREG(st.st_mode)) return absl::InternalError(Cat(Quoted(path), " changed"));
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    if (size > blobs.blob_bytes_max) {
      over_limit.push_back(path);
      continue;
    }
    // No process of the job is left (Sandbox::Run's promise), so nothing changes this file
    // any more; and it is sent from this descriptor, never by its path again.
    absl::StatusOr<std::string> sha256 = blobs.upload(fd.get(), size);
    if (absl::IsResourceExhausted(sha256.status())) {
      refused.push_back(path);
      if (refusal.empty()) refusal = std::string(sha256.status().message());
      continue;
    }
    if (!sha256.ok()) {
      return absl::Status(sha256.status().code(), Cat("uploading output ", Quoted(path),
                                                      " failed: ", sha256.status().message()));
    }
    if (!base::IsSha256Hex(*sha256)) {
      return absl::InternalError("the upload gave back something that is not a sha256 digest");
    }
    entry["sha256"] = *sha256;
    entry["size"] = static_cast<int64_t>(size);
    out.list_bytes += cost;
    out.outputs.push_back(std::move(entry));
  }
  out.missing = c.missing;
  // The message is cut at kTaskMessageBytesMax: what was not delivered comes first.
  if (!over_limit.empty()) {
    out.notes.push_back(Cat(over_limit.size(), " output files larger than a blob may be (",
                            blobs.blob_bytes_max, " bytes) were left out: ", NameList(over_limit)));
  }
  if (!refused.empty()) {
    out.notes.push_back(Cat(refused.size(), " output files were refused by the exchange (",
                            Printable(refusal, 200), ") and left out: ", NameList(refused)));
  }
  if (left_out > 0) {
    out.notes.push_back(Cat(left_out, " output files were left out (more than ",
                            kTaskOutputFilesMax, " files, deeper than ", kTaskOutputDepthMax,
                            " folders, names that are not UTF-8, or beyond the result's ",
                            kTaskResultBytesMax, " bytes)"));
  }
  if (c.walk_stopped) {
    out.notes.push_back(Cat("collecting outputs stopped after ", kTaskOutputEntriesVisitedMax,
                            " directory entries"));
  }
  return absl::OkStatus();
}

// Status, numbers and message of a job that the sandbox ran.
void Classify(const sandbox::JobResult& r, const TaskSpec& spec, int slots, Outcome& out) {
  out.exit_code = r.exit_code;
  out.term_signal = r.term_signal;
  out.wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(r.wall_time).count();
  out.cpu_ms = std::chrono::duration_cast<std::chrono::milliseconds>(r.cpu_time).count();
  out.peak_memory_mib =
      r.memory_peak_bytes > 0 ? (r.memory_peak_bytes + (int64_t{1} << 20) - 1) >> 20 : 0;
  if (r.cancelled) {
    out.status = "cancelled";
    out.message = "cancelled: the lease ended while the job ran; outputs were not collected";
  } else if (r.oom_killed) {
    out.status = "oom_killed";
    out.message = Cat("killed for running out of memory (",
                      (static_cast<int64_t>(slots) * sandbox::kSlotMemoryBytes) >> 20, " MiB with ",
                      slots, " slots)");
  } else if (r.timed_out) {
    out.status = "timed_out";
    out.message = Cat("killed after its timeout of ", spec.timeout_s.value_or(0), " s");
  } else if (r.exit_code == 0) {
    out.status = "succeeded";
    out.message = "exit code 0";
  } else {
    out.status = "failed";
    out.message = r.term_signal != 0 ? Cat("killed by signal ", r.term_signal)
                                     : Cat("exit code ", r.exit_code);
  }
  if (r.pids_limit_hit) {
    out.notes.push_back("a fork failed at the limit on processes and threads");
  }
}

// Everything between making the lease directory and wiping it. Sets *made once the lease
// directory exists and is ours to wipe.
void RunInLeaseDir(sandbox::Sandbox& sandbox, const std::string& lease_dir, const TaskSpec& spec,
                   const TaskRunOptions& options, const TaskBlobs& blobs, WarmStart* warm,
                   Outcome& out, bool* made) {
  if (::mkdir(options.work_root.c_str(), 0711) != 0 && errno != EEXIST) {
    out.Error(Cat("making the agent's work root: ",
                  ErrnoStatus(errno, Cat("mkdir ", options.work_root)).message()));
    return;
  }
  if (absl::Status s = CheckReachableByJob(options.work_root); !s.ok()) {
    out.Error(Cat("the agent's work root is not usable: ", s.message()));
    return;
  }
  int failed = 0;  // errno of making the lease directory
  if (warm == nullptr) {
    if (::mkdir(lease_dir.c_str(), 0711) != 0) failed = errno;
  } else {
    // rename(2) would replace an empty directory: refuse an existing one as mkdir does.
    struct stat existing;
    if (::lstat(lease_dir.c_str(), &existing) == 0) {
      failed = EEXIST;
    } else if (::rename(warm->dir.c_str(), lease_dir.c_str()) != 0) {
      failed = errno;
    }
  }
  if (failed != 0) {
    if (failed == EEXIST) {
      out.Error(Cat("the lease directory ", lease_dir,
                    " already exists: is this lease's task running already?"));
    } else {
      out.Error(Cat("making the lease directory: ",
                    ErrnoStatus(failed, Cat("mkdir ", lease_dir)).message()));
    }
    return;
  }
  *made = true;
  // The prepared sandbox's /work follows the rename: a bind mount holds the directory itself.
  if (warm != nullptr) warm->dir = lease_dir;
  // The lease directory is searchable (not readable) by all: the job's host uid passes
  // through it to work/ (see JobSpec::work_dir). logs/ and fetch/ stay private.
  const std::string work_dir = lease_dir + "/work";
  const std::string logs_dir = lease_dir + "/logs";
  const std::string fetch_dir = lease_dir + "/fetch";
  absl::Status prepared = ::chmod(lease_dir.c_str(), 0711) == 0
                              ? absl::OkStatus()
                              : ErrnoStatus(errno, Cat("chmod ", lease_dir));
  for (const std::string* dir : {&work_dir, &logs_dir, &fetch_dir}) {
    if (warm != nullptr && dir == &work_dir) continue;  // made with the warm start
    if (prepared.ok()) prepared = MakeDir(*dir, 0700);
  }
  if (!prepared.ok()) {
    out.Error(Cat("preparing the lease directory: ", prepared.message()));
    return;
  }

  UniqueFd work_fd(::open(work_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  UniqueFd fetch_fd(::open(fetch_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!work_fd.valid() || !fetch_fd.valid()) {
    out.Error(Cat("opening the lease directory: ",
                  ErrnoStatus(errno, Cat("open ", lease_dir)).message()));
    return;
  }
  for (size_t i = 0; i < spec.inputs.size(); ++i) {
    if (Cancelled(options)) break;
    if (absl::Status s =
            PlaceInput(spec.inputs[i], i, blobs, fetch_dir, fetch_fd.get(), work_fd.get());
        !s.ok()) {
      out.Error(std::string(s.message()));
      return;
    }
  }
  if (Cancelled(options)) {
    out.status = "cancelled";
    out.message = "cancelled: the lease ended before the job started";
    return;
  }

  sandbox::JobSpec job;
  job.argv = spec.command;
  job.env = JobEnv(spec);
  job.work_dir = work_dir;
  job.slots = options.slots;
  if (spec.timeout_s.has_value()) job.timeout = std::chrono::seconds(*spec.timeout_s);
  job.network = spec.network;
  job.cancel = options.cancel;
  if (warm != nullptr) job.prepared = warm->prepared.get();
  const std::string stdout_path = logs_dir + "/stdout";
  const std::string stderr_path = logs_dir + "/stderr";
  // A log longer than a blob may be could not be delivered whole anyway.
  job.output_bytes_max = std::min(job.output_bytes_max, blobs.blob_bytes_max);
  job.stdout_sink = sandbox::OutputSink::File(stdout_path);
  job.stderr_sink = sandbox::OutputSink::File(stderr_path);
  if (options.on_log) {
    job.stdout_sink.callback = [&options](std::string_view chunk) {
      options.on_log("stdout", chunk);
    };
    job.stderr_sink.callback = [&options](std::string_view chunk) {
      options.on_log("stderr", chunk);
    };
  }
  if (options.on_started) options.on_started();
  absl::StatusOr<sandbox::JobResult> result = sandbox.Run(job);
  if (warm != nullptr) warm->used = result.ok() && result->prewarmed;
  if (!result.ok()) {
    out.Error(Cat("the sandbox could not run the job: ", result.status().message()));
    return;
  }
  Classify(*result, spec, options.slots, out);

  struct Log {
    const std::string& path;
    bool truncated;
    json& blob;
    std::string_view name;
  };
  for (const Log& log : {Log{stdout_path, result->stdout_truncated, out.stdout_blob, "stdout"},
                         Log{stderr_path, result->stderr_truncated, out.stderr_blob, "stderr"}}) {
    absl::StatusOr<json> uploaded = UploadLog(blobs, log.path, log.truncated);
    if (absl::IsResourceExhausted(uploaded.status())) {
      // Refused for its size or the account's quota: the result says so instead of failing.
      log.blob = nullptr;
      out.notes.push_back(Cat("the job's ", log.name, " was not kept: the exchange refused it (",
                              Printable(std::string(uploaded.status().message()), 200), ")"));
      continue;
    }
    if (!uploaded.ok()) {
      out.Error(Cat("uploading the job's ", log.name, " failed: ", uploaded.status().message()));
      return;
    }
    log.blob = std::move(*uploaded);
  }
  if (result->cancelled) return;

  const Collected collected = CollectOutputs(work_fd.get(), spec.outputs);
  if (absl::Status s = UploadOutputs(blobs, work_fd.get(), collected, out); !s.ok()) {
    out.Error(std::string(s.message()));
    out.outputs = json::array();
    out.list_bytes = 0;
    return;
  }
}

}  // namespace

absl::StatusOr<WarmStart> PrepareWarmStart(sandbox::Sandbox& sandbox, const std::string& warm_root,
                                           const std::string& name, int64_t tmp_bytes) {
  if (::mkdir(warm_root.c_str(), 0711) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, Cat("mkdir ", warm_root));
  }
  OCX_RETURN_IF_ERROR(CheckReachableByJob(warm_root));
  WarmStart warm;
  warm.dir = Cat(warm_root, "/", name);
  // The same modes RunInLeaseDir gives a lease's directory, which this one becomes.
  absl::Status made = MakeDir(warm.dir, 0711);
  if (made.ok()) made = MakeDir(warm.dir + "/work", 0700);
  absl::StatusOr<std::unique_ptr<sandbox::PreparedSandbox>> prepared =
      made.ok() ? sandbox.Prepare({.work_dir = warm.dir + "/work", .tmp_bytes = tmp_bytes})
                : absl::StatusOr<std::unique_ptr<sandbox::PreparedSandbox>>(made);
  if (!prepared.ok()) {
    (void)sandbox::Wipe(warm.dir);
    return prepared.status();
  }
  warm.prepared = std::move(*prepared);
  return warm;
}

json RunTask(sandbox::Sandbox& sandbox, uint64_t lease, const TaskSpec& spec,
             const TaskRunOptions& options, const TaskBlobs& blobs, WarmStart* warm) {
  OCX_ASSERT(blobs.fetch != nullptr && blobs.upload != nullptr);
  OCX_ASSERT(blobs.blob_bytes_max > 0);
  // Whatever happens below, the warm start is used up on return: its sandbox first, then
  // its directory where it still is (moved to the lease's, it went with that one already).
  struct UseUp {
    WarmStart* warm;
    ~UseUp() {
      if (warm == nullptr) return;
      warm->prepared.reset();
      (void)sandbox::Wipe(warm->dir);
    }
  } use_up{warm};
  Outcome out;
  if (absl::Status s = CheckSpec(spec); !s.ok()) {
    out.Error(std::string(s.message()));
    return out.ToJson();
  }
  if (spec.network && !options.network_allowed) {
    out.Error("the task asks for network access, which this machine's policy does not allow");
    return out.ToJson();
  }
  if (options.work_root.empty() || options.work_root[0] != '/') {
    out.Error(Cat("the agent's work root ", Quoted(options.work_root), " is not an absolute path"));
    return out.ToJson();
  }
  const std::string lease_dir = Cat(options.work_root, "/lease-", lease);
  bool made = false;
  // A prepared sandbox has no network: such a task starts afresh.
  const bool use_warm = warm != nullptr && warm->prepared != nullptr && !spec.network;
  RunInLeaseDir(sandbox, lease_dir, spec, options, blobs, use_warm ? warm : nullptr, out, &made);
  if (warm != nullptr) warm->prepared.reset();  // one that never got its job, before its files
  if (made) {
    if (absl::Status s = sandbox::Wipe(lease_dir); !s.ok()) {
      out.notes.push_back(Cat("removing the lease directory failed: ", s.message()));
    }
  }
  return out.ToJson();
}

}  // namespace ocx::agent
