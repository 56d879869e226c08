// Names the calling thread, as `top -H`, `perf report --sort comm` and gdb show it, so a
// profile of the exchange says which of its threads spent the time.
#pragma once

#include <pthread.h>

#include <string>
#include <string_view>

namespace ocx::base {

// Linux keeps 15 bytes of a thread's name; a longer one is cut there.
inline void NameThisThread(std::string_view name) {
  const std::string kept(name.substr(0, 15));
  (void)pthread_setname_np(pthread_self(), kept.c_str());
}

}  // namespace ocx::base
