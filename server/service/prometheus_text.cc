#include "server/service/prometheus_text.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "fmt/format.h"

namespace reluserve {
namespace {

// Label values escape backslash, double quote and line feed; HELP text
// escapes backslash and line feed.
void AppendEscaped(std::string& out, std::string_view text, bool quotes) {
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

void AppendValue(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else {
    // Shortest text that reads back as the same double.
    out += fmt::format("{}", value);
  }
}

}  // namespace

void PrometheusText::Family(std::string_view name, std::string_view type,
                            std::string_view help) {
  text_.append("# HELP ").append(name).append(" ");
  AppendEscaped(text_, help, /*quotes=*/false);
  text_.append("\n# TYPE ").append(name).append(" ").append(type).append("\n");
}

void PrometheusText::Start(std::string_view name, const Labels& labels) {
  text_ += name;
  if (labels.empty()) {
    text_ += ' ';
    return;
  }
  text_ += '{';
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) text_ += ',';
    text_.append(labels[i].first).append("=\"");
    AppendEscaped(text_, labels[i].second, /*quotes=*/true);
    text_ += '"';
  }
  text_ += "} ";
}

void PrometheusText::Sample(std::string_view name, const Labels& labels,
                            double value) {
  Start(name, labels);
  AppendValue(text_, value);
  text_ += '\n';
}

void PrometheusText::Sample(std::string_view name, const Labels& labels,
                            uint64_t value) {
  Start(name, labels);
  absl::StrAppend(&text_, value, "\n");
}

Histogram::Histogram(std::vector<uint64_t> upper_bounds)
    : bounds_(std::move(upper_bounds)),
      buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(uint64_t value) {
  const size_t bucket =
      std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot snapshot;
  snapshot.bounds = bounds_;
  snapshot.cumulative.resize(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    snapshot.cumulative[i] = running;
  }
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

void WriteHistogram(PrometheusText& out, std::string_view name,
                    const PrometheusText::Labels& labels,
                    const Histogram::Snapshot& histogram, double divisor) {
  PrometheusText::Labels with_le = labels;
  with_le.emplace_back("le", "");
  const std::string bucket = std::string(name) + "_bucket";
  for (size_t i = 0; i < histogram.cumulative.size(); ++i) {
    std::string le = "+Inf";
    if (i < histogram.bounds.size()) {
      le.clear();
      AppendValue(le, static_cast<double>(histogram.bounds[i]) / divisor);
    }
    with_le.back().second = le;
    out.Sample(bucket, with_le, histogram.cumulative[i]);
  }
  out.Sample(std::string(name) + "_sum", labels,
             static_cast<double>(histogram.sum) / divisor);
  out.Sample(std::string(name) + "_count", labels, histogram.count());
}

}  // namespace reluserve
