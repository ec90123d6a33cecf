import { Effect, Metric, MetricKeyType, MetricState, Option } from "effect"
import type { MetricPair } from "effect"

/** Renders Effect's metric registry in the Prometheus text format (version 0.0.4). */

const escapeLabel = (value: string) => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, "\\\"")
const sanitizeName = (name: string) => name.replace(/[^a-zA-Z0-9_:]/g, "_")

const labels = (pairs: ReadonlyArray<readonly [string, string]>) =>
  pairs.length === 0 ? "" : `{${pairs.map(([key, value]) => `${sanitizeName(key)}="${escapeLabel(value)}"`).join(",")}}`

const formatNumber = (value: number | bigint) =>
  typeof value === "bigint" ? value.toString() : Number.isFinite(value) ? String(value) : value > 0 ? "+Inf" : value < 0 ? "-Inf" : "NaN"

const renderPair = (pair: MetricPair.MetricPair.Untyped): { name: string; type: string; lines: Array<string> } => {
  const name = sanitizeName(pair.metricKey.name)
  const tags = pair.metricKey.tags.map((tag) => [tag.key, tag.value] as const)
  const keyType = pair.metricKey.keyType
  const state = pair.metricState
  if (MetricKeyType.isCounterKey(keyType) && MetricState.isCounterState(state)) {
    return { name, type: "counter", lines: [`${name}${labels(tags)} ${formatNumber(state.count)}`] }
  }
  if (MetricKeyType.isGaugeKey(keyType) && MetricState.isGaugeState(state)) {
    return { name, type: "gauge", lines: [`${name}${labels(tags)} ${formatNumber(state.value)}`] }
  }
  if (MetricKeyType.isHistogramKey(keyType) && MetricState.isHistogramState(state)) {
    const lines = state.buckets.map(([boundary, count]) =>
      `${name}_bucket${labels([...tags, ["le", formatNumber(boundary)]])} ${count}`
    )
    if (!state.buckets.some(([boundary]) => boundary === Number.POSITIVE_INFINITY)) {
      lines.push(`${name}_bucket${labels([...tags, ["le", "+Inf"]])} ${state.count}`)
    }
    lines.push(`${name}_sum${labels(tags)} ${formatNumber(state.sum)}`, `${name}_count${labels(tags)} ${state.count}`)
    return { name, type: "histogram", lines }
  }
  if (MetricKeyType.isSummaryKey(keyType) && MetricState.isSummaryState(state)) {
    const lines = state.quantiles.flatMap(([quantile, value]) =>
      Option.isSome(value) ? [`${name}${labels([...tags, ["quantile", String(quantile)]])} ${formatNumber(value.value)}`] : []
    )
    lines.push(`${name}_sum${labels(tags)} ${formatNumber(state.sum)}`, `${name}_count${labels(tags)} ${state.count}`)
    return { name, type: "summary", lines }
  }
  if (MetricKeyType.isFrequencyKey(keyType) && MetricState.isFrequencyState(state)) {
    const lines = [...state.occurrences].map(([value, count]) => `${name}${labels([...tags, ["value", value]])} ${count}`)
    return { name, type: "counter", lines }
  }
  return { name, type: "untyped", lines: [] }
}

const processLines = () => {
  const memory = process.memoryUsage()
  return [
    "# TYPE jivapay_process_resident_memory_bytes gauge",
    `jivapay_process_resident_memory_bytes ${memory.rss}`,
    "# TYPE jivapay_process_heap_used_bytes gauge",
    `jivapay_process_heap_used_bytes ${memory.heapUsed}`,
    "# TYPE jivapay_process_uptime_seconds gauge",
    `jivapay_process_uptime_seconds ${Math.floor(process.uptime())}`
  ]
}

export const renderPrometheus = Effect.map(Metric.snapshot, (pairs) => {
  const byName = new Map<string, { type: string; lines: Array<string> }>()
  for (const pair of pairs) {
    const rendered = renderPair(pair)
    if (!rendered.name.startsWith("jivapay_")) continue
    const existing = byName.get(rendered.name)
    if (existing) existing.lines.push(...rendered.lines)
    else byName.set(rendered.name, { type: rendered.type, lines: rendered.lines })
  }
  const out: Array<string> = []
  for (const [name, { type, lines }] of [...byName].sort(([a], [b]) => a.localeCompare(b))) {
    out.push(`# TYPE ${name} ${type}`, ...lines)
  }
  out.push(...processLines())
  return out.join("\n") + "\n"
})
