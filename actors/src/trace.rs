//! The caller's tracing context carried across an actor hop: a message
//! handled on another thread (a sync actor's worker) runs its spans as
//! children of the caller's span, under the caller's subscriber, so one
//! request is one trace.

/// The span and subscriber current where a message was sent.
#[derive(Clone)]
pub struct TraceContext {
    span: tracing::Span,
    dispatch: tracing::Dispatch,
}

impl TraceContext {
    /// The context of the calling thread.
    pub fn current() -> Self {
        TraceContext {
            span: tracing::Span::current(),
            dispatch: tracing::dispatcher::get_default(|d| d.clone()),
        }
    }

    /// Runs `work` in a span `name` that is a child of the carried span.
    pub fn in_child<R>(&self, name: &'static str, work: impl FnOnce() -> R) -> R {
        tracing::dispatcher::with_default(&self.dispatch, || {
            let _parent = self.span.enter();
            let span = tracing::info_span!("worker", otel.name = name);
            span.in_scope(work)
        })
    }
}
