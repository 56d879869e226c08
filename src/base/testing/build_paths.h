// Where this build's pieces are, for tests: the repository, the `ocx` binary, the sandbox
// probe. Compiled into one small file (build_paths.cc) and nowhere else, so that no other
// object depends on where the checkout or the build directory lives: ccache then serves the
// tests' objects to every clone (scripts/ccache-env.sh).
#pragma once

namespace ocx::base::testing {

// The repository's root (docs/, examples/ are read from it).
const char* SourceDir();
// The `ocx` executable of this build.
const char* OcxBinary();
// The sandbox tests' probe executable (src/sandbox/testdata/sandbox_probe.cc).
const char* SandboxProbe();

}  // namespace ocx::base::testing
