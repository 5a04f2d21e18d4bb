// Types of parse-prometheus-text-format (the package ships none): Prometheus
// text format in, metric families out.
declare module 'parse-prometheus-text-format' {
  interface Sample {
    value?: string
    count?: string
    sum?: string
    buckets?: Record<string, string>
    quantiles?: Record<string, string>
    labels?: Record<string, string>
  }
  interface MetricFamily {
    name: string
    help: string
    type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED'
    metrics: Sample[]
  }
  export default function parsePrometheusTextFormat(text: string): MetricFamily[]
}
