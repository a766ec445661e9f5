#include "server/service/stop_signals.h"

#include <pthread.h>

namespace reluserve {

StopSignals::StopSignals() {
  sigemptyset(&signals_);
  sigaddset(&signals_, SIGINT);
  sigaddset(&signals_, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
}

int StopSignals::Wait() {
  int received = 0;
  sigwait(&signals_, &received);
  return received;
}

}  // namespace reluserve
