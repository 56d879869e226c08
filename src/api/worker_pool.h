// A small fixed pool of threads for blocking work the I/O threads must not do: query-store
// reads (SQLite), waits for the store to catch up, blob file I/O.
// Thread-safe. The queue is bounded (queue_max); TryPost refuses work past it, and the API
// answers 503 rather than letting a backlog grow without limit.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "src/base/thread_name.h"

namespace ocx::api {

class WorkerPool {
 public:
  WorkerPool(size_t threads, size_t queue_max) : queue_max_(queue_max) {
    for (size_t i = 0; i < threads; ++i)
      threads_.emplace_back([this] {
        base::NameThisThread("ocx-worker");
        Run();
      });
  }
  ~WorkerPool() { Stop(); }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // False when the queue is full or the pool is stopping (the task is not run).
  bool TryPost(std::function<void()> task) {
    {
      std::lock_guard lock(mu_);
      if (stopping_ || queue_.size() >= queue_max_) return false;
      queue_.push_back(std::move(task));
    }
    cv_.notify_one();
    return true;
  }

  // Runs what is queued, then joins the threads. Idempotent.
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  void Run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }

  const size_t queue_max_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // Guarded by mu_.
  bool stopping_ = false;                    // Guarded by mu_.
  std::vector<std::thread> threads_;
};

}  // namespace ocx::api
