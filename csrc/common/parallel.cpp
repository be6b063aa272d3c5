#include "parallel.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <pthread.h>
#include <thread>
#include <vector>

namespace prunq {

namespace {

// Workers sleep on a condition variable between jobs. The pool is never destroyed: joining
// threads from a static destructor at interpreter exit can deadlock.
class Pool {
 public:
  // Runs job(1..workers) on pool threads while the caller runs job(0); returns when all are done.
  void run(int workers, const std::function<void(int)>& job) {
    ensure_threads(workers);
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = &job;
      wanted_ = workers;
      remaining_ = workers;
      ++generation_;
    }
    start_.notify_all();
    job(0);
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [&] { return remaining_ == 0; });
    job_ = nullptr;
  }

  std::mutex& busy() { return busy_; }

 private:
  void ensure_threads(int workers) {
    while (int(threads_) < workers) {
      const int id = int(++threads_);
      std::thread([this, id] { loop(id); }).detach();
    }
  }

  void loop(int id) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int)>* job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        start_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (id > wanted_) continue;
        job = job_;
      }
      (*job)(id);
      std::lock_guard<std::mutex> lock(mu_);
      if (--remaining_ == 0) done_.notify_one();
    }
  }

  std::mutex busy_;  // one parallel_for at a time
  std::mutex mu_;
  std::condition_variable start_, done_;
  const std::function<void(int)>* job_ = nullptr;
  uint64_t generation_ = 0;
  int wanted_ = 0, remaining_ = 0;
  unsigned threads_ = 0;
};

Pool* g_pool = nullptr;

// A forked child has none of the parent's threads: it starts a fresh pool.
void reset_pool_in_child() { g_pool = new Pool(); }

Pool& pool() {
  static bool once = [] {
    g_pool = new Pool();
    pthread_atfork(nullptr, nullptr, reset_pool_in_child);
    return true;
  }();
  (void)once;
  return *g_pool;
}

}  // namespace

void parallel_for(int64_t n, int num_threads, int64_t min_chunk,
                  const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  const int64_t by_size = std::max<int64_t>(1, n / std::max<int64_t>(1, min_chunk));
  const int chunks = int(std::min<int64_t>(std::max(1, num_threads), by_size));
  if (chunks == 1) return fn(0, n);
  std::unique_lock<std::mutex> lock(pool().busy(), std::try_to_lock);
  if (!lock.owns_lock()) return fn(0, n);
  const int64_t step = (n + chunks - 1) / chunks;
  pool().run(chunks - 1, [&](int i) {
    const int64_t begin = i * step, end = std::min(n, begin + step);
    if (begin < end) fn(begin, end);
  });
}

}  // namespace prunq
