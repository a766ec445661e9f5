#ifndef RELUSERVE_SERVER_SERVICE_STOP_SIGNALS_H_
#define RELUSERVE_SERVER_SERVICE_STOP_SIGNALS_H_

#include <signal.h>

namespace reluserve {

// SIGINT and SIGTERM, taken synchronously by Wait() instead of by a handler.
// Construct it first in main, before any thread starts: threads inherit the
// blocked mask, so the signals reach only Wait().
//
// Thread safety: one Wait() at a time.
class StopSignals {
 public:
  StopSignals();
  // Blocks until SIGINT or SIGTERM arrives; returns the signal number.
  int Wait();

 private:
  sigset_t signals_;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_STOP_SIGNALS_H_
