#include "server/service/stop_signals.h"

#include <pthread.h>
#include <string.h>

#include <cstdlib>

#include "spdlog/spdlog.h"

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

StopSignalWatcher::StopSignalWatcher() : thread_([this] { Run(); }) {}

StopSignalWatcher::~StopSignalWatcher() {
  // The thread waits in sigwait for ever; the process is ending anyway.
  thread_.detach();
}

void StopSignalWatcher::MarkServing() {
  absl::MutexLock lock(&mutex_);
  serving_ = true;
}

int StopSignalWatcher::WaitForStop() {
  absl::MutexLock lock(&mutex_);
  mutex_.Await(absl::Condition(
      +[](int* received) { return *received != 0; }, &received_));
  return received_;
}

void StopSignalWatcher::Run() {
  const int first = signals_.Wait();
  bool serving = false;
  {
    absl::MutexLock lock(&mutex_);
    serving = serving_;
    if (serving) received_ = first;
  }
  if (!serving) {
    spdlog::warn("{} during start-up: exiting", strsignal(first));
    std::_Exit(128 + first);
  }
  const int second = signals_.Wait();
  spdlog::warn("{} again: exiting now, without waiting for the drain",
               strsignal(second));
  std::_Exit(128 + second);
}

}  // namespace reluserve
