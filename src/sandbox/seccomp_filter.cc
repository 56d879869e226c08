#include "src/sandbox/seccomp_filter.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "src/sandbox/unique_fd.h"

namespace ocx::sandbox {

const std::vector<DeniedSyscall>& DeniedSyscalls() {
  static const auto* const kDenied = new std::vector<DeniedSyscall>{
      // Mount namespace changes: old and new (fd-based) mount API.
      {"mount", EPERM},
      {"umount2", EPERM},
      {"pivot_root", EPERM},
      {"move_mount", EPERM},
      {"open_tree", EPERM},
      {"fsopen", EPERM},
      {"fsconfig", EPERM},
      {"fsmount", EPERM},
      {"fspick", EPERM},
      {"mount_setattr", EPERM},
      // New namespaces and joining others'. clone() is filtered by its flags instead;
      // clone3() passes flags in memory, which seccomp cannot read, so it is refused with
      // ENOSYS: glibc then falls back to clone(), which the filter can check.
      {"unshare", EPERM},
      {"setns", EPERM},
      {"clone3", ENOSYS},
      // Looking into or changing other processes.
      {"ptrace", EPERM},
      {"process_vm_readv", EPERM},
      {"process_vm_writev", EPERM},
      {"kcmp", EPERM},
      // Kernel attack surface a batch job has no use for.
      {"bpf", EPERM},
      {"perf_event_open", EPERM},
      {"userfaultfd", EPERM},
      {"keyctl", EPERM},
      {"add_key", EPERM},
      {"request_key", EPERM},
      {"io_uring_setup", EPERM},  // its operations bypass seccomp
      {"io_uring_enter", EPERM},
      {"io_uring_register", EPERM},
      // Host administration (these also need capabilities the job does not have).
      {"init_module", EPERM},
      {"finit_module", EPERM},
      {"delete_module", EPERM},
      {"kexec_load", EPERM},
      {"kexec_file_load", EPERM},
      {"open_by_handle_at", EPERM},
      {"name_to_handle_at", EPERM},
      {"iopl", EPERM},
      {"ioperm", EPERM},
      {"swapon", EPERM},
      {"swapoff", EPERM},
      {"reboot", EPERM},
      {"syslog", EPERM},
      {"acct", EPERM},
      {"quotactl", EPERM},
      {"uselib", EPERM},
  };
  return *kDenied;
}

namespace {

struct ContextDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};

absl::Status SeccompError(int rc, absl::string_view what) {
  // libseccomp returns -errno.
  return absl::InternalError(absl::StrCat("libseccomp: ", what, ": ", std::strerror(-rc)));
}

absl::StatusOr<int> Resolve(absl::string_view name) {
  int nr = seccomp_syscall_resolve_name(std::string(name).c_str());
  if (nr == __NR_SCMP_ERROR) {
    return absl::InternalError(
        absl::StrCat("libseccomp does not know the system call '", name, "'"));
  }
  return nr;
}

}  // namespace

absl::StatusOr<std::string> BuildSeccompBpf() {
  std::unique_ptr<void, ContextDeleter> ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (ctx == nullptr) return absl::InternalError("seccomp_init failed");
  // Only the native ABI is in the filter; x86_64 filters also send x32 system call numbers
  // to this action. Killing the whole process is what a container runtime does as well.
  int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  if (rc != 0) return SeccompError(rc, "set bad-arch action");

  for (const DeniedSyscall& denied : DeniedSyscalls()) {
    absl::StatusOr<int> nr = Resolve(std::string(denied.name));
    if (!nr.ok()) return nr.status();
    rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(denied.error), *nr, 0);
    if (rc != 0) return SeccompError(rc, absl::StrCat("deny ", std::string(denied.name)));
  }

  // clone() with any namespace flag. (CLONE_NEWTIME is not among them: for clone() its bit
  // is part of the exit-signal byte, so it can only be used through clone3/unshare.)
  absl::StatusOr<int> clone_nr = Resolve("clone");
  if (!clone_nr.ok()) return clone_nr.status();
  constexpr uint64_t kNamespaceFlags[] = {CLONE_NEWNS,  CLONE_NEWCGROUP, CLONE_NEWUTS,
                                          CLONE_NEWIPC, CLONE_NEWUSER,   CLONE_NEWPID,
                                          CLONE_NEWNET};
  for (uint64_t flag : kNamespaceFlags) {
    // Several rules for one system call are alternatives: any flag set -> EPERM.
    rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EPERM), *clone_nr, 1,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
    if (rc != 0) return SeccompError(rc, "deny clone with namespace flags");
  }

  // ioctl TIOCSTI (push bytes into a terminal's input) and TIOCLINUX (which can do the same
  // on a virtual console). The kernel takes the request as a 32-bit int, so compare the low
  // 32 bits only: otherwise TIOCSTI | (1 << 32) would slip past the filter.
  absl::StatusOr<int> ioctl_nr = Resolve("ioctl");
  if (!ioctl_nr.ok()) return ioctl_nr.status();
  for (uint64_t request : {uint64_t{TIOCSTI}, uint64_t{TIOCLINUX}}) {
    rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EPERM), *ioctl_nr, 1,
                          SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffULL, request));
    if (rc != 0) return SeccompError(rc, "deny ioctl");
  }

  // libseccomp 2.5 exports to a file descriptor only; go through a memfd.
  int raw = ::memfd_create("ocx-seccomp", MFD_CLOEXEC);
  if (raw < 0) return internal::ErrnoStatus(errno, "memfd_create");
  internal::UniqueFd fd(raw);
  rc = seccomp_export_bpf(ctx.get(), fd.get());
  if (rc != 0) return SeccompError(rc, "export BPF");
  off_t size = ::lseek(fd.get(), 0, SEEK_END);
  if (size <= 0 || size % 8 != 0) {
    return absl::InternalError("libseccomp exported an empty or odd-sized BPF program");
  }
  std::string bpf(static_cast<size_t>(size), '\0');
  ssize_t n;
  do {
    n = ::pread(fd.get(), bpf.data(), bpf.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n != size) return internal::ErrnoStatus(errno, "read back BPF");
  return bpf;
}

}  // namespace ocx::sandbox
