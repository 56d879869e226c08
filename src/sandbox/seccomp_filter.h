// The seccomp filter every job runs under, built with libseccomp and handed to bubblewrap
// as a classic BPF program (`bwrap --seccomp FD`), which loads it just before it execs the
// job. It is a deny list on top of the namespaces, capability drop and unprivileged uid:
// it closes kernel interfaces that have been the usual way out of containers.
// docs/sandbox.md explains each entry.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace ocx::sandbox {

struct DeniedSyscall {
  std::string_view name;
  int error;  // the errno the job sees
};

// System calls refused outright (EPERM unless noted). Arguments-dependent rules (clone with
// namespace flags, ioctl TIOCSTI/TIOCLINUX) are documented in docs/sandbox.md.
const std::vector<DeniedSyscall>& DeniedSyscalls();

// Builds the filter for the native architecture (x86_64 here); a system call made through
// any other ABI (i386 `int 0x80`, x32) kills the process with SIGSYS. Returns the BPF
// program as bytes (an array of struct sock_filter). Build it once; it does not change.
absl::StatusOr<std::string> BuildSeccompBpf();

}  // namespace ocx::sandbox
