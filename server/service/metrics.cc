#include "server/service/metrics.h"

#include "server/service/process_metrics.h"
#include "server/service/prometheus_text.h"

namespace reluserve {
namespace {

using Labels = PrometheusText::Labels;

Labels ModelLabels(const ModelMetrics& model) {
  return {{"model", model.name}, {"version", model.version}};
}

// Triton counts durations in whole microseconds.
double Microseconds(uint64_t ns) { return static_cast<double>(ns / 1000); }

// Triton's per-model families with one sample per model, in Triton's words.
struct PerModelFamily {
  const char* name;
  const char* type;
  const char* help;
  double (*value)(const ModelMetrics& model);
};

constexpr PerModelFamily kCounters[] = {
    {"nv_inference_request_success", "counter",
     "Number of successful inference requests, all batch sizes",
     [](const ModelMetrics& m) { return double(m.totals.success); }},
    {"nv_inference_count", "counter",
     "Number of inferences performed (rows of successful requests)",
     [](const ModelMetrics& m) { return double(m.totals.inference_count); }},
    {"nv_inference_exec_count", "counter",
     "Number of model executions performed",
     [](const ModelMetrics& m) { return double(m.totals.execution_count); }},
    {"nv_inference_request_duration_us", "counter",
     "Cumulative inference request duration in microseconds",
     [](const ModelMetrics& m) { return Microseconds(m.totals.request_ns); }},
    {"nv_inference_queue_duration_us", "counter",
     "Cumulative inference queuing duration in microseconds",
     [](const ModelMetrics& m) { return Microseconds(m.totals.queue_ns); }},
    {"nv_inference_compute_input_duration_us", "counter",
     "Cumulative compute input duration in microseconds",
     [](const ModelMetrics& m) {
       return Microseconds(m.totals.compute_input_ns);
     }},
    {"nv_inference_compute_infer_duration_us", "counter",
     "Cumulative compute inference duration in microseconds",
     [](const ModelMetrics& m) {
       return Microseconds(m.totals.compute_infer_ns);
     }},
    {"nv_inference_compute_output_duration_us", "counter",
     "Cumulative inference compute output duration in microseconds",
     [](const ModelMetrics& m) {
       return Microseconds(m.totals.compute_output_ns);
     }},
    {"nv_inference_pending_request_count", "gauge",
     "Instantaneous number of pending requests awaiting execution",
     [](const ModelMetrics& m) { return double(m.pending_requests); }},
};

void WriteTritonFamilies(PrometheusText& out,
                         const std::vector<ModelMetrics>& models) {
  for (const PerModelFamily& family : kCounters) {
    out.Family(family.name, family.type, family.help);
    for (const ModelMetrics& model : models) {
      out.Sample(family.name, ModelLabels(model), family.value(model));
    }
  }
  out.Family("nv_inference_request_failure", "counter",
             "Number of failed inference requests, all batch sizes");
  for (const ModelMetrics& model : models) {
    for (int reason = 0; reason < kFailureReasons; ++reason) {
      Labels labels = ModelLabels(model);
      labels.emplace_back(
          "reason", FailureReasonLabel(static_cast<FailureReason>(reason)));
      out.Sample("nv_inference_request_failure", labels,
                 model.totals.failure[reason]);
    }
  }
}

void WriteHistograms(PrometheusText& out,
                     const std::vector<ModelMetrics>& models) {
  out.Family("reluserve_request_duration_seconds", "histogram",
             "Successful inference requests from arrival to answer, by pass "
             "(forward, or backward: the request had grad_y).");
  for (const ModelMetrics& model : models) {
    for (const bool backward : {false, true}) {
      Labels labels = ModelLabels(model);
      labels.emplace_back("pass", backward ? "backward" : "forward");
      WriteHistogram(out, "reluserve_request_duration_seconds", labels,
                     backward ? model.totals.backward_request_ns
                              : model.totals.forward_request_ns,
                     1e9);
    }
  }
  out.Family("reluserve_batch_rows", "histogram",
             "Rows per model execution (several requests' under dynamic "
             "batching).");
  for (const ModelMetrics& model : models) {
    WriteHistogram(out, "reluserve_batch_rows", ModelLabels(model),
                   model.totals.batch_rows, 1.0);
  }
}

void WriteDeadRelu(PrometheusText& out,
                   const std::vector<ModelMetrics>& models) {
  struct Gauge {
    const char* name;
    const char* help;
    int64_t DeadReluMonitor::Snapshot::*value;
  };
  const Gauge gauges[] = {
      {"reluserve_relu_units", "Units of the ReLU layer.",
       &DeadReluMonitor::Snapshot::units},
      {"reluserve_relu_dead_units",
       "Units of the ReLU layer whose output was 0 for every row of the "
       "window.",
       &DeadReluMonitor::Snapshot::dead_units},
      {"reluserve_relu_window_rows",
       "Rows in the dead-unit window: the last --dead-relu-window rows, or "
       "all rows seen while fewer.",
       &DeadReluMonitor::Snapshot::window_rows},
  };
  bool monitored = false;
  for (const ModelMetrics& model : models) {
    monitored = monitored || !model.relu_layers.empty();
  }
  if (!monitored) return;  // --dead-relu-window 0
  for (const Gauge& gauge : gauges) {
    out.Family(gauge.name, "gauge", gauge.help);
    for (const ModelMetrics& model : models) {
      for (const ModelMetrics::ReluLayer& layer : model.relu_layers) {
        Labels labels = ModelLabels(model);
        labels.emplace_back("layer", layer.layer);
        out.Sample(gauge.name, labels, layer.snapshot.*gauge.value);
      }
    }
  }
}

}  // namespace

std::string RenderMetrics(const std::vector<ModelMetrics>& models,
                          const GrpcCallCounter& calls) {
  PrometheusText out;
  WriteTritonFamilies(out, models);
  WriteHistograms(out, models);
  WriteDeadRelu(out, models);
  calls.Write(out);
  WriteProcessMetrics(out);
  return out.text();
}

}  // namespace reluserve
