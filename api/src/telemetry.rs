//! Request tracing: one span per request, parented on an incoming W3C
//! `traceparent` header, with the trace id returned in `x-trace-id`. Child
//! spans (cache, store, transform, snapshot) are opened by the store itself;
//! where spans go (OTLP, logs, nowhere) is the binary's choice.

use actix_web::dev::ServiceRequest;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub const TRACE_ID_HEADER: &str = "x-trace-id";

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// The span of one request, a child of the caller's trace when the request
/// carries a valid `traceparent`.
pub fn request_span(req: &ServiceRequest, route: &str) -> tracing::Span {
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format!("{} {route}", req.method()),
        http.request.method = %req.method(),
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        reprise.key = tracing::field::Empty,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(req.headers()))
    });
    if parent.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer is installed: then there is
        // no trace to join, and nothing to do.
        let _ = span.set_parent(parent);
    }
    // Logs inside the request carry the same id as the exported spans.
    if let Some(id) = trace_id(&span) {
        span.record("trace_id", id.as_str());
    }
    span
}

/// The trace id of `span` (32 hex digits), when tracing is on.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// The trace id of `span` as a header value, when tracing is on.
pub fn trace_id_header(span: &tracing::Span) -> Option<HeaderValue> {
    HeaderValue::from_str(&trace_id(span)?).ok()
}
