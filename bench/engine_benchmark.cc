// Google Benchmark target for the matching engine over the synthetic mixed stream
// (the same workload as `ocx bench engine`; see docs/benchmarks.md).
#include "benchmark/benchmark.h"
#include "bench/engine_workload.h"

namespace ocx::bench {
namespace {

void BM_EngineMixedStream(benchmark::State& state) {
  MixedStreamOptions options;
  options.commands = static_cast<size_t>(state.range(0));
  const Workload workload = GenerateMixedStream(options);
  std::vector<engine::Event> events;
  events.reserve(4096);
  for (auto _ : state) {
    state.PauseTiming();
    engine::OrderBook book;
    for (const engine::Command& command : workload.prefill) {
      events.clear();
      engine::Apply(book, command, &events);
    }
    state.ResumeTiming();
    for (const engine::Command& command : workload.measured) {
      events.clear();
      engine::Apply(book, command, &events);
    }
    benchmark::DoNotOptimize(events.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(workload.measured.size()));
}
BENCHMARK(BM_EngineMixedStream)->Arg(1'000'000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ocx::bench

BENCHMARK_MAIN();
