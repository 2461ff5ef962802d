#include "train/bench.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "data/sampler.h"
#include "model/adamw.h"
#include "model/gpt.h"
#include "train/device.h"
#include "train/op_profiler.h"
#include "train/step.h"
#include "train/train_data.h"
#include "train/trainer.h"

namespace lmt {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

PhaseTiming summarize(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) {
    const double pos = q * static_cast<double>(samples.size() - 1);
    const size_t lo = static_cast<size_t>(pos);
    const size_t hi = std::min(lo + 1, samples.size() - 1);
    return samples[lo] + (pos - static_cast<double>(lo)) * (samples[hi] - samples[lo]);
  };
  return {at(0.5), at(0.1), at(0.9)};
}

}  // namespace

BenchReport run_bench(const LoadedRecipe& loaded, const BenchOptions& options) {
  const Recipe& r = loaded.recipe;
  if (options.steps < 1 || options.warmup < 0)
    throw Error(fmt::format("--steps must be at least 1 and --warmup at least 0 (got {} and {})",
                            options.steps, options.warmup));
  TrainData data = load_train_data(r.data, r.eval, r.model.vocab_size, r.run.seq_len);
  const GPTConfig cfg = resolve_model_config(r, data.vocab_size, loaded.path);
  const int B = static_cast<int>(r.run.micro_batch_size), T = static_cast<int>(r.run.seq_len);
  const int64_t accum = r.run.grad_accum_steps;
  data::WindowSampler sampler(data.train, T, static_cast<uint64_t>(r.run.seed));
  BackendChoice choice = make_backend(backend_request(r, cfg, options.device, 0, loaded.path));
  ProfilingBackend profiler(*choice.backend);
  Backend& backend = options.ops ? static_cast<Backend&>(profiler) : *choice.backend;
  GPT model(backend, cfg);
  model.init_weights(static_cast<uint64_t>(r.run.seed), r.model.init_std);
  AdamW optimizer(backend, model.layout(), model.num_param_storage());
  const AdamWHyper hyper = adamw_hyper(r.optimizer);
  // fp16 runs at its initial loss scale (the timing does not depend on the value).
  const double loss_scale = r.precision.dtype == "fp16" ? loss_scaler_config(r.precision).initial_scale : 1.0;

  std::vector<int32_t> inputs(static_cast<size_t>(B) * T), targets(inputs.size());
  std::vector<double> data_ms, forward_ms, backward_ms, optimizer_ms, total_ms;
  for (int64_t step = 0; step < options.warmup + options.steps; ++step) {
    StepPhases phases;
    const auto step_start = Clock::now();
    const std::vector<data::WindowRef> windows = sampler.next(static_cast<size_t>(accum * B));
    phases.data_ms += ms_since(step_start);
    accumulate_gradients(model, data.train, windows, accum, B, T, inputs, targets, &phases,
                         static_cast<float>(loss_scale));
    const auto t = Clock::now();
    const double norm = optimizer.grad_norm(model.grads());
    optimizer.step(model.params(), model.grads(), hyper, hyper.lr, norm / loss_scale,
                   static_cast<float>(1.0 / loss_scale));
    model.parameters_changed();
    backend.synchronize();
    const double o = ms_since(t);
    const double total = ms_since(step_start);
    if (step < options.warmup) {
      profiler.reset();
      continue;
    }
    data_ms.push_back(phases.data_ms);
    forward_ms.push_back(phases.forward_ms);
    backward_ms.push_back(phases.backward_ms);
    optimizer_ms.push_back(o);
    total_ms.push_back(total);
  }
  BenchReport report;
  report.backend = backend.name();
  report.threads = r.run.threads;
  report.steps = options.steps;
  report.warmup = options.warmup;
  report.tokens_per_step = r.run.global_batch_size * T;
  report.flops_per_step = flops_per_token(cfg, T) * static_cast<double>(report.tokens_per_step);
  report.phases = {{"data", summarize(data_ms)},
                   {"forward", summarize(forward_ms)},
                   {"backward", summarize(backward_ms)},
                   {"optimizer", summarize(optimizer_ms)}};
  report.total = summarize(total_ms);
  report.tokens_per_s = static_cast<double>(report.tokens_per_step) / (report.total.median_ms / 1e3);
  report.gflops = report.flops_per_step / (report.total.median_ms / 1e3) / 1e9;
  if (r.log.peak_tflops > 0) report.mfu = report.gflops / (r.log.peak_tflops * 1e3);
  for (const OpTiming& t : profiler.timings()) {
    const double steps = static_cast<double>(options.steps);
    report.ops.push_back({t.name, static_cast<double>(t.calls) / steps, t.total_ms / steps,
                          t.flops > 0 ? t.flops / (t.total_ms / 1e3) / 1e9 : 0.0});
  }
  return report;
}

}  // namespace lmt
