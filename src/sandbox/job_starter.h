// The message that hands a prepared sandbox its job (BubblewrapSandbox::Prepare and Run):
// written by the agent to the command descriptor (a socket), read by ocx-job-start inside
// the sandbox after it wrote kJobStarterReady there.
// Layout: a JobStarterHeader, then `bytes` bytes holding `argc` NUL-terminated argv entries
// followed by `envc` NUL-terminated "KEY=VALUE" entries. Native byte order: both ends are
// on the same machine.
#pragma once

#include <cstdint>

namespace ocx::sandbox {

inline constexpr uint32_t kJobStarterMagic = 0x5358434f;  // "OCXS" in little-endian order
// More than execve(2) takes on Linux (the argument and environment strings share a quarter
// of the stack limit), so the bound refuses nothing the kernel would run.
inline constexpr uint32_t kJobStarterBytesMax = 64u << 20;
// The byte ocx-job-start writes first on the command descriptor: it runs, so bubblewrap's
// set-up is complete, and it waits for the message.
inline constexpr char kJobStarterReady = 'R';
// Exit code of ocx-job-start when the message is missing or malformed (the agent went away
// before sending it, or a bug): distinct from 126/127, which the shell convention reserves.
inline constexpr int kJobStarterProtocolExit = 125;

struct JobStarterHeader {
  uint32_t magic;
  uint32_t argc;
  uint32_t envc;
  uint32_t bytes;
};

}  // namespace ocx::sandbox
