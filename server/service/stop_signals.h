#ifndef RELUSERVE_SERVER_SERVICE_STOP_SIGNALS_H_
#define RELUSERVE_SERVER_SERVICE_STOP_SIGNALS_H_

#include <signal.h>

#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace reluserve {

// SIGINT, SIGTERM and SIGHUP, taken synchronously by Wait() instead of by a
// handler.
// Construct it first in main, before any thread starts: threads inherit the
// blocked mask, so the signals reach only Wait().
//
// Thread safety: one Wait() at a time.
class StopSignals {
 public:
  StopSignals();
  // Blocks until one of them arrives; returns the signal number.
  int Wait();

 private:
  sigset_t signals_;
};

// The server's answer to SIGINT and SIGTERM, on a thread of its own that
// starts with the object (so construct it first in main, like StopSignals),
// and to SIGHUP, which calls the reload handler (if any) and nothing else:
// - before MarkServing(), a signal ends the process at once (start-up, e.g.
//   loading a large weights file, is not worth finishing);
// - after it, the first signal is returned by WaitForStop(), which starts
//   the drain, and a second one ends the process at once.
// "At once" is std::_Exit(128 + signal), after one log line.
//
// Thread safety: MarkServing() and WaitForStop() may be called from any
// thread; WaitForStop() by one thread at a time.
class StopSignalWatcher {
 public:
  StopSignalWatcher();
  ~StopSignalWatcher();  // only reached if no signal came; see Detach
  StopSignalWatcher(const StopSignalWatcher&) = delete;
  StopSignalWatcher& operator=(const StopSignalWatcher&) = delete;

  void MarkServing();
  // What SIGHUP does from now on (re-reading the token file); without one,
  // SIGHUP is logged and ignored. Runs on the watcher's thread.
  void SetReloadHandler(std::function<void()> reload);
  // Blocks until the first signal after MarkServing(); returns its number.
  int WaitForStop();

 private:
  void Run();
  // The next SIGINT or SIGTERM; SIGHUPs until then go to the reload handler.
  int WaitForStopSignal();

  StopSignals signals_;
  absl::Mutex mutex_;
  bool serving_ ABSL_GUARDED_BY(mutex_) = false;
  int received_ ABSL_GUARDED_BY(mutex_) = 0;
  std::function<void()> reload_ ABSL_GUARDED_BY(mutex_);
  std::thread thread_;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_STOP_SIGNALS_H_
