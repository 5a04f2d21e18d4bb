// Opt-in diagnostic, preloaded into the server only by the cleanup scenario:
// `node --import ./bench/eventloop-probe.mjs dist/latchkey.cjs serve`. It watches
// the server's own event loop (perf_hooks.monitorEventLoopDelay) and appends one
// JSON line per interval to BENCH_ELD_FILE: { t (epoch ms), max, p99, mean } in ms.
// Nothing in the server changes; without the flag it is not loaded at all.
import { appendFileSync } from 'node:fs'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { isMainThread } from 'node:worker_threads'

// `--import` runs in worker threads too; only the server's main event loop counts.
const file = process.env.BENCH_ELD_FILE
if (file && isMainThread) {
  const histogram = monitorEventLoopDelay({ resolution: 1 })
  histogram.enable()
  const ms = (ns) => Math.round(ns / 1e4) / 100
  const flush = () => {
    appendFileSync(
      file,
      `${JSON.stringify({ t: Date.now(), max: ms(histogram.max), p99: ms(histogram.percentile(99)), mean: ms(histogram.mean) })}\n`,
    )
    histogram.reset()
  }
  setInterval(flush, 250).unref()
}
