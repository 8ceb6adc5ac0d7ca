//! The OTLP layout on the wire: the three signals and the field numbers the core walks by,
//! read from the generated tables (the installed opentelemetry-proto descriptors).

use std::sync::OnceLock;

use crate::json::tables::MESSAGES;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Signal {
    Traces,
    Logs,
    Metrics,
}

impl Signal {
    pub fn from_name(name: &str) -> Option<Signal> {
        match name {
            "traces" => Some(Signal::Traces),
            "logs" => Some(Signal::Logs),
            "metrics" => Some(Signal::Metrics),
            _ => None,
        }
    }
}

// --- field numbers, from the generated tables --------------------------------------------------

pub const N_KV_KEY: u64 = 1;
pub const N_KV_VALUE: u64 = 2;

/// The field numbers of one signal's nesting: request -> resource_x -> scope_x -> items.
pub struct Layout {
    pub request_items: u64,
    /// resource_x: the Resource, the scope_x list and the schema URL
    pub resource: u64,
    pub scopes: u64,
    pub resource_schema: u64,
    /// scope_x: the InstrumentationScope, the items and the schema URL
    pub scope: u64,
    pub items: u64,
    pub scope_schema: u64,
}

pub struct Numbers {
    pub layouts: [Layout; 3],
    pub resource_attributes: u64,
    pub scope_name: u64,
    pub scope_version: u64,
    pub scope_attributes: u64,
    pub span_links: u64,
    pub link_attributes: u64,
    pub span_status: u64,
    pub status_message: u64,
    /// ArrayValue's and KeyValueList's `values`
    pub array_values: u64,
    pub kvlist_values: u64,
    pub span_trace_id: u64,
    pub span_name: u64,
    pub span_kind: u64,
    pub status_code: u64,
    pub log_severity: u64,
    pub metric_name: u64,
    pub span_attributes: u64,
    pub span_events: u64,
    pub event_name: u64,
    pub event_attributes: u64,
    pub log_trace_id: u64,
    pub log_body: u64,
    pub log_attributes: u64,
    pub log_event_name: u64,
    /// (Metric field, its data points field, the points' attributes field)
    pub metric_data: [(u64, u64, u64); 5],
    /// AnyValue's string_value, bool_value, int_value, double_value, array_value, kvlist_value,
    /// bytes_value, string_value_strindex
    pub any: [u64; 8],
}

fn number(message: &str, field: &str) -> u64 {
    let full = format!("opentelemetry.proto.{message}");
    let m = MESSAGES
        .iter()
        .find(|m| m.full_name == full)
        .unwrap_or_else(|| panic!("no message {full}"));
    m.fields
        .iter()
        .find(|f| f.name == field)
        .unwrap_or_else(|| panic!("no field {full}.{field}"))
        .number as u64
}

pub fn numbers() -> &'static Numbers {
    static N: OnceLock<Numbers> = OnceLock::new();
    N.get_or_init(|| {
        let layout = |request: &str,
                      items_of_request: &str,
                      resource: &str,
                      scopes_field: &str,
                      scope: &str,
                      items_field: &str| Layout {
            request_items: number(request, items_of_request),
            resource: number(resource, "resource"),
            scopes: number(resource, scopes_field),
            resource_schema: number(resource, "schema_url"),
            scope: number(scope, "scope"),
            items: number(scope, items_field),
            scope_schema: number(scope, "schema_url"),
        };
        assert_eq!(number("common.v1.KeyValue", "key"), N_KV_KEY);
        assert_eq!(number("common.v1.KeyValue", "value"), N_KV_VALUE);
        let data = |metric_field: &str, message: &str, point: &str| {
            (
                number("metrics.v1.Metric", metric_field),
                number(message, "data_points"),
                number(point, "attributes"),
            )
        };
        let any = |f: &str| number("common.v1.AnyValue", f);
        Numbers {
            layouts: [
                layout(
                    "collector.trace.v1.ExportTraceServiceRequest",
                    "resource_spans",
                    "trace.v1.ResourceSpans",
                    "scope_spans",
                    "trace.v1.ScopeSpans",
                    "spans",
                ),
                layout(
                    "collector.logs.v1.ExportLogsServiceRequest",
                    "resource_logs",
                    "logs.v1.ResourceLogs",
                    "scope_logs",
                    "logs.v1.ScopeLogs",
                    "log_records",
                ),
                layout(
                    "collector.metrics.v1.ExportMetricsServiceRequest",
                    "resource_metrics",
                    "metrics.v1.ResourceMetrics",
                    "scope_metrics",
                    "metrics.v1.ScopeMetrics",
                    "metrics",
                ),
            ],
            resource_attributes: number("resource.v1.Resource", "attributes"),
            scope_name: number("common.v1.InstrumentationScope", "name"),
            scope_version: number("common.v1.InstrumentationScope", "version"),
            scope_attributes: number("common.v1.InstrumentationScope", "attributes"),
            span_links: number("trace.v1.Span", "links"),
            link_attributes: number("trace.v1.Span.Link", "attributes"),
            span_status: number("trace.v1.Span", "status"),
            status_message: number("trace.v1.Status", "message"),
            array_values: number("common.v1.ArrayValue", "values"),
            kvlist_values: number("common.v1.KeyValueList", "values"),
            span_trace_id: number("trace.v1.Span", "trace_id"),
            span_name: number("trace.v1.Span", "name"),
            span_kind: number("trace.v1.Span", "kind"),
            status_code: number("trace.v1.Status", "code"),
            log_severity: number("logs.v1.LogRecord", "severity_number"),
            metric_name: number("metrics.v1.Metric", "name"),
            span_attributes: number("trace.v1.Span", "attributes"),
            span_events: number("trace.v1.Span", "events"),
            event_name: number("trace.v1.Span.Event", "name"),
            event_attributes: number("trace.v1.Span.Event", "attributes"),
            log_trace_id: number("logs.v1.LogRecord", "trace_id"),
            log_body: number("logs.v1.LogRecord", "body"),
            log_attributes: number("logs.v1.LogRecord", "attributes"),
            log_event_name: number("logs.v1.LogRecord", "event_name"),
            metric_data: [
                data("gauge", "metrics.v1.Gauge", "metrics.v1.NumberDataPoint"),
                data("sum", "metrics.v1.Sum", "metrics.v1.NumberDataPoint"),
                data(
                    "histogram",
                    "metrics.v1.Histogram",
                    "metrics.v1.HistogramDataPoint",
                ),
                data(
                    "exponential_histogram",
                    "metrics.v1.ExponentialHistogram",
                    "metrics.v1.ExponentialHistogramDataPoint",
                ),
                data(
                    "summary",
                    "metrics.v1.Summary",
                    "metrics.v1.SummaryDataPoint",
                ),
            ],
            any: [
                any("string_value"),
                any("bool_value"),
                any("int_value"),
                any("double_value"),
                any("array_value"),
                any("kvlist_value"),
                any("bytes_value"),
                any("string_value_strindex"),
            ],
        }
    })
}

/// Traces, logs, metrics (in `Signal` order).
pub fn layouts() -> &'static [Layout; 3] {
    &numbers().layouts
}

/// AnyValue's members, in `Numbers::any` order.
pub fn any_numbers() -> &'static [u64; 8] {
    &numbers().any
}
