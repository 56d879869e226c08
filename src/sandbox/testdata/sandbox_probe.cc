// sandbox_probe: a small, statically linked program that the sandbox tests run inside the
// sandbox to try things a hostile job would try. Each mode prints what happened and exits
// 0 when the sandbox held (the attempt failed the expected way), 1 when it did not, 2 on
// bad usage. Modes that are workloads (membomb, forkbomb, cpuhog, ...) say so below.
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

// Prints "<what>: <result>" and returns whether the call failed with `expected_errno`.
bool ExpectErrno(const char* what, long rc, int expected_errno) {
  int error = errno;
  if (rc >= 0) {
    std::printf("%s: succeeded (rc=%ld)\n", what, rc);
    return false;
  }
  std::printf("%s: %s\n", what, std::strerror(error));
  return error == expected_errno;
}

double Now() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// read PATH...: exit 0 when none of the paths can be opened.
int ReadPaths(int argc, char** argv) {
  bool all_failed = true;
  for (int i = 0; i < argc; ++i) {
    int fd = open(argv[i], O_RDONLY);
    if (fd >= 0) {
      char buffer[64];
      ssize_t n = read(fd, buffer, sizeof(buffer));
      std::printf("%s: opened (read %zd bytes)\n", argv[i], n);
      close(fd);
      all_failed = false;
    } else {
      std::printf("%s: %s\n", argv[i], std::strerror(errno));
    }
  }
  return all_failed ? 0 : 1;
}

// connect PORT: exit 0 when a TCP connection to 127.0.0.1:PORT fails.
int Connect(const char* port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    std::printf("socket: %s\n", std::strerror(errno));
    return 0;
  }
  struct sockaddr_in addr;
  std::memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(port)));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = connect(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr));
  std::printf("connect 127.0.0.1:%s: %s\n", port, rc == 0 ? "connected" : std::strerror(errno));
  return rc == 0 ? 1 : 0;
}

// tiocsti: pushing a byte into a terminal fails with EPERM, also with high bits set in the
// request (the kernel ignores them; the filter must too).
int Tiocsti() {
  char c = 'x';
  bool ok = ExpectErrno("ioctl(TIOCSTI)", ioctl(0, TIOCSTI, &c), EPERM);
  ok &= ExpectErrno("ioctl(TIOCSTI | 1<<32)",
                    syscall(SYS_ioctl, 0, static_cast<unsigned long>(TIOCSTI) | (1UL << 32), &c),
                    EPERM);
  char linux_arg = 0;
  ok &= ExpectErrno("ioctl(TIOCLINUX)", ioctl(0, TIOCLINUX, &linux_arg), EPERM);
  return ok ? 0 : 1;
}

// userns: no new user namespace by any route.
int UserNs() {
  bool ok = ExpectErrno("unshare(CLONE_NEWUSER)", unshare(CLONE_NEWUSER), EPERM);
  ok &= ExpectErrno("unshare(CLONE_NEWNS)", unshare(CLONE_NEWNS), EPERM);
  // clone() with namespace flags: raw, so a success does not run on in a shared stack.
  long rc = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, nullptr, nullptr, nullptr, 0);
  if (rc == 0) _exit(0);
  if (rc > 0) waitpid(static_cast<pid_t>(rc), nullptr, 0);
  ok &= ExpectErrno("clone(CLONE_NEWUSER)", rc, EPERM);
  rc = syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, nullptr, nullptr, nullptr, 0);
  if (rc == 0) _exit(0);
  if (rc > 0) waitpid(static_cast<pid_t>(rc), nullptr, 0);
  ok &= ExpectErrno("clone(CLONE_NEWNET)", rc, EPERM);
  // clone3 is refused with ENOSYS (its flags are out of the filter's reach).
  struct {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
  } args{CLONE_NEWUSER, 0, 0, 0, SIGCHLD, 0, 0, 0};
  rc = syscall(SYS_clone3, &args, sizeof(args));
  if (rc == 0) _exit(0);
  ok &= ExpectErrno("clone3", rc, ENOSYS);
  // An ordinary fork still works (glibc falls back from clone3 to clone).
  pid_t child = fork();
  if (child == 0) _exit(0);
  int status = 0;
  if (child < 0 || waitpid(child, &status, 0) != child) {
    std::printf("fork: %s\n", std::strerror(errno));
    ok = false;
  } else {
    std::printf("fork: works\n");
  }
  ok &= ExpectErrno("setns", syscall(SYS_setns, 0, 0), EPERM);
  return ok ? 0 : 1;
}

// ptrace: no tracing or reading of another process, even our own child.
int Ptrace() {
  pid_t child = fork();
  if (child == 0) {
    for (;;) pause();
  }
  bool ok = ExpectErrno("ptrace(PTRACE_ATTACH child)", ptrace(PTRACE_ATTACH, child, 0, 0), EPERM);
  ok &= ExpectErrno("ptrace(PTRACE_SEIZE init)", ptrace(PTRACE_SEIZE, 1, 0, 0), EPERM);
  char local[8], remote[8] = {0};
  struct iovec l {
    local, sizeof(local)
  }, r{remote, sizeof(remote)};
  ok &= ExpectErrno("process_vm_readv", process_vm_readv(child, &l, 1, &r, 1, 0), EPERM);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  ok &= ExpectErrno("ptrace(PTRACE_TRACEME)", ptrace(PTRACE_TRACEME, 0, 0, 0), EPERM);
  return ok ? 0 : 1;
}

// mount: no mounts, old API or new.
int Mount() {
  bool ok = ExpectErrno("mount tmpfs", mount("none", "/tmp", "tmpfs", 0, nullptr), EPERM);
  ok &= ExpectErrno("umount2 /work", umount2("/work", MNT_DETACH), EPERM);
  ok &= ExpectErrno("fsopen", syscall(SYS_fsopen, "tmpfs", 0), EPERM);
  ok &= ExpectErrno("open_tree", syscall(SYS_open_tree, AT_FDCWD, "/usr", 0), EPERM);
  ok &= ExpectErrno("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"), EPERM);
  return ok ? 0 : 1;
}

// kernel: other kernel interfaces the filter closes.
int Kernel() {
  bool ok = ExpectErrno("bpf", syscall(SYS_bpf, 0, nullptr, 0), EPERM);
  ok &= ExpectErrno("perf_event_open", syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0), EPERM);
  ok &= ExpectErrno("userfaultfd", syscall(SYS_userfaultfd, 0), EPERM);
  ok &= ExpectErrno("keyctl", syscall(SYS_keyctl, 0, 0, 0, 0, 0), EPERM);
  ok &= ExpectErrno("add_key", syscall(SYS_add_key, "user", "x", "y", 1, 0), EPERM);
  ok &= ExpectErrno("init_module", syscall(SYS_init_module, nullptr, 0, ""), EPERM);
  ok &= ExpectErrno("kexec_load", syscall(SYS_kexec_load, 0, 0, nullptr, 0), EPERM);
  ok &= ExpectErrno("io_uring_setup", syscall(SYS_io_uring_setup, 1, nullptr), EPERM);
  return ok ? 0 : 1;
}

// int80: a system call through the i386 ABI. The filter kills the process (SIGSYS), so
// reaching the end is a failure.
int Int80() {
  long rc;
  // eax = 20: getpid in the i386 table.
  asm volatile("int $0x80" : "=a"(rc) : "a"(20L) : "memory");
  std::printf("int 0x80 getpid returned %ld\n", rc);
  return 1;
}

// x32: a system call with the x32 bit set. Killed by the filter as well.
int X32() {
  long rc = syscall(0x40000000L | SYS_getpid);
  std::printf("x32 getpid returned %ld (%s)\n", rc, rc < 0 ? std::strerror(errno) : "ok");
  return 1;
}

// membomb MIB: workload; allocates and touches MIB mebibytes, 4 MiB at a time.
int MemBomb(long mib) {
  std::vector<char*> blocks;
  for (long i = 0; i < mib / 4; ++i) {
    char* block = static_cast<char*>(
        mmap(nullptr, 4 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (block == MAP_FAILED) {
      std::printf("mmap failed after %ld MiB\n", i * 4);
      return 1;
    }
    std::memset(block, 0x5a, 4 << 20);
    blocks.push_back(block);
  }
  std::printf("allocated %ld MiB\n", mib);
  return 0;
}

// forkbomb: workload; forks forever in every process, spinning between attempts.
int ForkBomb() {
  std::printf("forkbomb starting\n");
  std::fflush(stdout);
  for (;;) {
    pid_t pid = fork();
    if (pid < 0) {
      volatile int spin = 0;
      for (int i = 0; i < 100000; ++i) spin = spin + 1;
    }
  }
}

// cpuhog THREADS SECONDS: workload; THREADS threads spin for SECONDS of wall time.
int CpuHog(int threads, double seconds) {
  const double end = Now() + seconds;
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) {
    pool.emplace_back([end] {
      volatile uint64_t x = 0;
      while (Now() < end) {
        for (int j = 0; j < 10000; ++j) x = x + 1;
      }
    });
  }
  for (std::thread& t : pool) t.join();
  std::printf("spun %d threads for %.2f s\n", threads, seconds);
  return 0;
}

// daemonize: workload; a child escapes into its own session (setsid + fork) and sleeps,
// the main process sleeps too. Both must die at the timeout.
int Daemonize() {
  pid_t child = fork();
  if (child == 0) {
    setsid();
    if (fork() != 0) _exit(0);
    std::printf("daemon %d running\n", getpid());
    std::fflush(stdout);
    for (;;) sleep(1000);
  }
  waitpid(child, nullptr, 0);
  std::printf("ready\n");
  std::fflush(stdout);
  for (;;) sleep(1000);
}

// ready-sleep: workload; prints "ready" and sleeps until killed.
int ReadySleep() {
  std::printf("ready\n");
  std::fflush(stdout);
  for (;;) sleep(1000);
}

// fds: lists open descriptors; exit 0 when only 0, 1 and 2 are open.
int Fds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) {
    std::printf("opendir /proc/self/fd: %s\n", std::strerror(errno));
    return 1;
  }
  bool ok = true;
  while (struct dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    int fd = std::atoi(entry->d_name);
    if (fd == dirfd(dir)) continue;
    char target[256] = {0};
    std::string link = std::string("/proc/self/fd/") + entry->d_name;
    ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
    std::printf("fd %d -> %s\n", fd, n > 0 ? target : "?");
    if (fd > 2) ok = false;
  }
  closedir(dir);
  return ok ? 0 : 1;
}

// id: prints uid/gid and capabilities line; exit 0.
int Id() {
  std::printf("uid=%d gid=%d euid=%d\n", getuid(), getgid(), geteuid());
  return 0;
}

// env: prints the environment.
int Env() {
  for (char** e = environ; *e != nullptr; ++e) std::printf("%s\n", *e);
  return 0;
}

// write PATH: exit 0 when creating PATH fails.
int WritePath(const char* path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    std::printf("%s: created\n", path);
    close(fd);
    return 1;
  }
  std::printf("%s: %s\n", path, std::strerror(errno));
  return 0;
}

// spew BYTES: writes BYTES bytes of 'y' to stdout.
int Spew(long bytes) {
  std::string chunk(65536, 'y');
  while (bytes > 0) {
    size_t n = static_cast<size_t>(std::min<long>(bytes, static_cast<long>(chunk.size())));
    if (write(1, chunk.data(), n) < 0) return 1;
    bytes -= static_cast<long>(n);
  }
  return 0;
}

int Usage() {
  std::fprintf(stderr,
               "usage: sandbox_probe MODE [ARGS]\n"
               "modes: read PATH..., write PATH, connect PORT, tiocsti, userns, ptrace, mount,\n"
               "       kernel, int80, x32, membomb MIB, forkbomb, cpuhog THREADS SECONDS,\n"
               "       daemonize, ready-sleep, fds, id, env, spew BYTES, exit CODE,\n"
               "       kill-self SIGNAL\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc < 2) return Usage();
  std::string mode = argv[1];
  if (mode == "read" && argc >= 3) return ReadPaths(argc - 2, argv + 2);
  if (mode == "write" && argc == 3) return WritePath(argv[2]);
  if (mode == "connect" && argc == 3) return Connect(argv[2]);
  if (mode == "tiocsti") return Tiocsti();
  if (mode == "userns") return UserNs();
  if (mode == "ptrace") return Ptrace();
  if (mode == "mount") return Mount();
  if (mode == "kernel") return Kernel();
  if (mode == "int80") return Int80();
  if (mode == "x32") return X32();
  if (mode == "membomb" && argc == 3) return MemBomb(std::atol(argv[2]));
  if (mode == "forkbomb") return ForkBomb();
  if (mode == "cpuhog" && argc == 4) return CpuHog(std::atoi(argv[2]), std::atof(argv[3]));
  if (mode == "daemonize") return Daemonize();
  if (mode == "ready-sleep") return ReadySleep();
  if (mode == "fds") return Fds();
  if (mode == "id") return Id();
  if (mode == "env") return Env();
  if (mode == "spew" && argc == 3) return Spew(std::atol(argv[2]));
  if (mode == "exit" && argc == 3) return std::atoi(argv[2]);
  if (mode == "kill-self" && argc == 3) {
    kill(getpid(), std::atoi(argv[2]));
    return 1;
  }
  return Usage();
}
