#include "src/base/testing/build_paths.h"

namespace ocx::base::testing {

const char* SourceDir() { return OCX_SOURCE_DIR; }
const char* OcxBinary() { return OCX_BINARY; }
const char* SandboxProbe() { return OCX_SANDBOX_PROBE; }

}  // namespace ocx::base::testing
