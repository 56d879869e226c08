// ocx-job-start: the first program in a prepared sandbox (BubblewrapSandbox::Prepare).
// bubblewrap has already built the namespaces and mounts, dropped capabilities and loaded
// the seccomp filter when it runs this; it waits on the descriptor named by its one argument
// for the job's command and environment (job_starter.h), then becomes the job by execvp,
// exactly as bubblewrap itself would have started it (same process, same PATH lookup).
// Static and small: it runs inside the sandbox, where only /usr of the host is visible, and
// it must cost next to nothing on the way to the job's first instruction.
#include "src/sandbox/job_starter.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char** environ;

namespace {

bool ReadFull(int fd, void* data, size_t size) {
  char* at = static_cast<char*>(data);
  while (size > 0) {
    ssize_t n = ::read(fd, at, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    at += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Points `out[0..count)` at consecutive NUL-terminated strings from `*at`; false when the
// buffer ends first.
bool Split(char** at, const char* end, uint32_t count, char** out) {
  for (uint32_t i = 0; i < count; ++i) {
    const void* nul = memchr(*at, '\0', static_cast<size_t>(end - *at));
    if (nul == nullptr) return false;
    out[i] = *at;
    *at = static_cast<char*>(const_cast<void*>(nul)) + 1;
  }
  out[count] = nullptr;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ocx::sandbox;
  if (argc != 2) return kJobStarterProtocolExit;
  const int fd = atoi(argv[1]);
  // Ready: the sandbox is complete. Prepare() returns once it reads this.
  if (fd < 3 || ::write(fd, &kJobStarterReady, 1) != 1) return kJobStarterProtocolExit;
  JobStarterHeader header;
  if (!ReadFull(fd, &header, sizeof(header)) || header.magic != kJobStarterMagic ||
      header.bytes > kJobStarterBytesMax || header.argc == 0 || header.argc > header.bytes ||
      header.envc > header.bytes) {
    return kJobStarterProtocolExit;
  }
  char* buffer = static_cast<char*>(malloc(header.bytes + 1));
  char** job_argv = static_cast<char**>(calloc(header.argc + 1, sizeof(char*)));
  char** job_env = static_cast<char**>(calloc(header.envc + 1, sizeof(char*)));
  if (buffer == nullptr || job_argv == nullptr || job_env == nullptr)
    return kJobStarterProtocolExit;
  if (!ReadFull(fd, buffer, header.bytes)) return kJobStarterProtocolExit;
  ::close(fd);  // nothing of the agent stays open in the job
  char* at = buffer;
  const char* end = buffer + header.bytes;
  if (!Split(&at, end, header.argc, job_argv) || !Split(&at, end, header.envc, job_env) ||
      at != end) {
    return kJobStarterProtocolExit;
  }
  environ = job_env;  // execvp looks the command up on the job's PATH, as bubblewrap does
  // bubblewrap sets PWD after its --chdir, over whatever the job's environment said.
  char cwd[4096];
  if (getcwd(cwd, sizeof(cwd)) != nullptr) setenv("PWD", cwd, 1);
  execvp(job_argv[0], job_argv);
  // The exit code bubblewrap gives the same failure, so that a job fails the same way whether
  // or not its sandbox was prepared.
  fprintf(stderr, "ocx-job-start: execvp %s: %s\n", job_argv[0], strerror(errno));
  return 1;
}
