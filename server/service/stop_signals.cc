#include "server/service/stop_signals.h"

#include <pthread.h>
#include <string.h>

#include <cstdlib>
#include <utility>

#include "spdlog/spdlog.h"

namespace reluserve {

StopSignals::StopSignals() {
  sigemptyset(&signals_);
  sigaddset(&signals_, SIGINT);
  sigaddset(&signals_, SIGTERM);
  sigaddset(&signals_, SIGHUP);
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

void StopSignalWatcher::SetReloadHandler(std::function<void()> reload) {
  absl::MutexLock lock(&mutex_);
  reload_ = std::move(reload);
}

int StopSignalWatcher::WaitForStopSignal() {
  for (;;) {
    const int received = signals_.Wait();
    if (received != SIGHUP) return received;
    std::function<void()> reload;
    {
      absl::MutexLock lock(&mutex_);
      reload = reload_;
    }
    if (reload) {
      reload();
    } else {
      spdlog::info("SIGHUP: nothing to reload (no --auth-token-file)");
    }
  }
}

int StopSignalWatcher::WaitForStop() {
  absl::MutexLock lock(&mutex_);
  mutex_.Await(absl::Condition(
      +[](int* received) { return *received != 0; }, &received_));
  return received_;
}

void StopSignalWatcher::Run() {
  const int first = WaitForStopSignal();
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
  const int second = WaitForStopSignal();
  spdlog::warn("{} again: exiting now, without waiting for the drain",
               strsignal(second));
  std::_Exit(128 + second);
}

}  // namespace reluserve
