#include "client/load_calls.h"

#include <string>
#include <utility>

#include "grpcpp/generic/generic_stub.h"

namespace reluserve::load_internal {
namespace {

// Static storage: gRPC may keep the method name's pointer for the call.
const std::string& InferMethod() {
  static const std::string* method =
      new std::string("/inference.GRPCInferenceService/ModelInfer");
  return *method;
}
const std::string& StreamMethod() {
  static const std::string* method =
      new std::string("/inference.GRPCInferenceService/ModelStreamInfer");
  return *method;
}

// One ModelInfer call; deletes itself when done.
class UnaryCall final : public grpc::ClientUnaryReactor {
 public:
  UnaryCall(Step* step, const Ticket& ticket) : step_(step), ticket_(ticket) {}

  // The step has counted this call (Claim with new_reactor).
  static void Start(Step* step, const Ticket& ticket) {
    auto* call = new UnaryCall(step, ticket);
    Transport& transport = call->step_->transport();
    call->context_.set_deadline(std::chrono::system_clock::now() +
                                transport.timeout);
    call->request_ = RequestWithId(transport.body, ticket.id);
    transport.stubs[ticket.channel]->PrepareUnaryCall(
        &call->context_, InferMethod(), grpc::StubOptions(), &call->request_,
        &call->response_, call);
    call->sent_ = step->clock().Now();
    call->StartCall();
  }

  void OnDone(const grpc::Status& status) override {
    const Outcome outcome =
        status.ok() ? Check(ScanResponse(response_, /*stream=*/false),
                            ticket_.id, step_->transport().expected_outputs)
                    : FromStatus(status);
    const std::optional<Ticket> next =
        step_->Record(ticket_, sent_, outcome, step_->closed_loop(),
                      /*new_reactor=*/true);
    // Replace before letting go, so the step never looks idle in between.
    if (next.has_value()) Start(step_, *next);
    // Deleting the context drops its channel reference while the driver
    // still holds the channels (see StreamConn::OnDone).
    Step* const step = step_;
    delete this;
    step->ReactorDone();  // the last touch: the driver may now free `step`
  }

 private:
  Step* const step_;
  const Ticket ticket_;
  grpc::ClientContext context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  Clock::time_point sent_;
};

}  // namespace

void StartUnaryCall(Step* step, const Ticket& ticket) {
  UnaryCall::Start(step, ticket);
}

std::shared_ptr<StreamConn> StreamConn::Open(
    Step* step, int channel, const std::optional<Ticket>& first) {
  auto stream = std::make_shared<StreamConn>(step, channel);
  step->AddReactor();
  step->Register(stream);
  stream->context_.set_deadline(step->stream_deadline());
  step->transport().stubs[channel]->PrepareBidiStreamingCall(
      &stream->context_, StreamMethod(), grpc::StubOptions(), stream.get());
  // Until Close(), so Send() may start writes from outside reactions.
  stream->AddHold();
  stream->StartRead(&stream->read_);
  // Before StartCall no reaction can close the stream: this Send succeeds.
  if (first.has_value()) stream->Send(*first);
  stream->StartCall();
  return stream;
}

bool StreamConn::Send(const Ticket& ticket) {
  const grpc::ByteBuffer* to_write = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closing_) return false;
    outstanding_.push_back({ticket, step_->clock().Now()});
    writes_.push_back(RequestWithId(step_->transport().body, ticket.id));
    if (!writing_) {
      writing_ = true;
      to_write = &writes_.front();
    }
  }
  if (to_write != nullptr) StartWrite(to_write);
  return true;
}

void StreamConn::Close() {
  bool writes_done = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closing_) return;
    closing_ = true;
    if (!writing_ && !writes_done_) writes_done = writes_done_ = true;
  }
  if (writes_done) StartWritesDone();
  RemoveHold();
}

bool StreamConn::closing() {
  std::lock_guard<std::mutex> lock(mu_);
  return closing_;
}

void StreamConn::CancelIfStale(Clock::time_point cutoff) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (outstanding_.empty() || outstanding_.front().sent >= cutoff) return;
    timed_out_ = true;
  }
  context_.TryCancel();
}

void StreamConn::OnWriteDone(bool ok) {
  const grpc::ByteBuffer* to_write = nullptr;
  bool writes_done = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    writes_.pop_front();
    if (!ok) {
      // The stream is broken; reads fail next and OnDone counts the rest.
      writes_.clear();
      writing_ = false;
      return;
    }
    if (!writes_.empty()) {
      to_write = &writes_.front();
    } else {
      writing_ = false;
      if (closing_ && !writes_done_) writes_done = writes_done_ = true;
    }
  }
  if (to_write != nullptr) StartWrite(to_write);
  if (writes_done) StartWritesDone();
}

void StreamConn::OnReadDone(bool ok) {
  if (!ok) {
    Close();
    return;
  }
  const ScannedResponse response = ScanResponse(read_, /*stream=*/true);
  std::optional<Pending> pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!outstanding_.empty()) {
      pending = outstanding_.front();
      outstanding_.pop_front();
    }
  }
  if (!pending.has_value()) {
    step_->RecordStray();
  } else {
    Outcome outcome = Check(response, pending->ticket.id,
                            step_->transport().expected_outputs);
    // A stream has no per-message deadline: enforce it here, as gRPC does
    // for unary calls.
    if (outcome.ok &&
        step_->clock().Now() - pending->sent > step_->transport().timeout) {
      outcome = {false, "DEADLINE_EXCEEDED",
                 "stream response arrived after the timeout"};
    }
    const std::optional<Ticket> next =
        step_->Record(pending->ticket, pending->sent, outcome,
                      step_->closed_loop(), /*new_reactor=*/false);
    if (next.has_value()) {
      if (!Send(*next)) step_->Abandon(*next);
    } else if (step_->closed_loop()) {
      // Done, or backing off after UNAVAILABLE: the retry opens a new
      // stream when due.
      Close();
    }
  }
  StartRead(&read_);
}

void StreamConn::OnDone(const grpc::Status& status) {
  // Keeps this object alive until released below.
  std::shared_ptr<StreamConn> self = step_->Unregister(this);
  std::deque<Pending> unanswered;
  bool timed_out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    unanswered.swap(outstanding_);
    timed_out = timed_out_;
  }
  Outcome outcome;
  if (timed_out) {
    outcome = {false, "DEADLINE_EXCEEDED",
               "no stream response within the timeout; stream cancelled"};
  } else if (!status.ok()) {
    outcome = FromStatus(status);
  } else {
    outcome = {false, "INTERNAL", "the stream ended without a response"};
  }
  std::optional<Ticket> next;
  for (const Pending& pending : unanswered) {
    // A closed-loop slot lost its request with the stream: reopen it (after
    // a backoff when the answer was UNAVAILABLE; the step then queues it).
    const bool replace = step_->closed_loop() && !next.has_value();
    std::optional<Ticket> claimed =
        step_->Record(pending.ticket, pending.sent, outcome, replace,
                      /*new_reactor=*/false);
    if (claimed.has_value()) next = claimed;
  }
  if (next.has_value()) Open(step_, channel_, next);
  // Our context holds a channel reference. Release it (and maybe this
  // object) before the driver may free the channels: their last reference
  // must not be dropped on a gRPC callback thread (grpc/grpc#32584).
  Step* const step = step_;
  self.reset();
  step->ReactorDone();
}

}  // namespace reluserve::load_internal
