// Inside reluserve-load --protocol http: the calls. Every request in flight
// has a thread of its own with a blocking keep-alive connection
// (HttpConnection); a closed-loop slot's thread sends the slot's next
// request itself, over the same connection. Not part of the library's
// interface (namespace load_internal).

#ifndef RELUSERVE_CLIENT_LOAD_HTTP_CALLS_H_
#define RELUSERVE_CLIENT_LOAD_HTTP_CALLS_H_

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "client/http_connection.h"
#include "client/http_infer_response.h"
#include "client/http_protocol.h"
#include "client/load_step.h"

namespace reluserve::load_internal {

// What every HTTP request of a run shares.
struct HttpCallSpec {
  std::string target;
  HttpInferRequest request;  // sent with each ticket's id
  int expected_outputs = 1;
  std::chrono::milliseconds timeout{10000};  // each request's deadline
  int max_attempts = 1;     // while the answer is 503 or the connection refused
  ClientSecurity security;  // TLS and the token of every connection
  // Threads (and connections) at most: as many as requests can be in flight.
  int max_threads = 1;
};

// Whether `summary` answers request `id` with `expected` outputs (Check's
// verdict for an HTTP answer).
Outcome CheckHttp(const HttpInferSummary& summary, uint64_t id, int expected);

// The threads that send a run's HTTP requests, started as requests need
// them and kept, with their connections, from step to step.
//
// Thread safety: Start() and AbortAll() from any thread; the threads take
// requests from a queue under mu_ and record their answers into the Step,
// never holding mu_ while they send.
class HttpCalls {
 public:
  explicit HttpCalls(HttpCallSpec spec) : spec_(std::move(spec)) {}
  // Breaks off the requests in progress and joins every thread.
  ~HttpCalls();

  HttpCalls(const HttpCalls&) = delete;
  HttpCalls& operator=(const HttpCalls&) = delete;

  // Sends the request for `ticket`, which the step has counted as a call
  // (claimed with new_reactor), on an idle thread or a new one. The thread
  // records the answer, sends the replacement the step hands back, and
  // calls ReactorDone() as the last touch of `step` for each request.
  void Start(Step* step, const Ticket& ticket);

  // Breaks off every request in progress; they count as CANCELLED.
  void AbortAll();

 private:
  struct Job {
    Step* step;
    Ticket ticket;
  };
  struct Worker {
    std::unique_ptr<HttpConnection> connection;
    std::thread thread;
  };

  void Work(const HttpConnection& connection);
  // Sends `job`'s request and the replacements that follow it.
  void Run(const HttpConnection& connection, Job job) const;
  Outcome Send(const HttpConnection& connection, uint64_t id) const;

  const HttpCallSpec spec_;
  std::mutex mu_;
  std::condition_variable cv_;  // a job queued, or stopping
  std::deque<Job> jobs_;        // guarded
  size_t idle_ = 0;             // threads waiting for a job; guarded
  bool stopping_ = false;       // guarded
  std::vector<std::unique_ptr<Worker>> workers_;  // guarded
};

}  // namespace reluserve::load_internal

#endif  // RELUSERVE_CLIENT_LOAD_HTTP_CALLS_H_
