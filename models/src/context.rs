//! Context features: what the ranker knows about a (user, item) pair beyond
//! the candidate generators' scores — user, item and user×item features read
//! point-in-time from the feature store. The pipeline asks for them through
//! [`ContextSource`], so this crate stays free of storage.

/// One candidate whose context is wanted, as of `as_of` (Unix seconds):
/// every value returned must have been known at that time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContextRequest {
    pub user: u32,
    pub item: u32,
    pub as_of: i64,
}

pub type ContextError = Box<dyn std::error::Error + Send + Sync>;

/// Where context features come from (a point-in-time snapshot when
/// training, online reads when serving).
pub trait ContextSource {
    /// Names of the values [`ContextSource::fetch`] returns, in order.
    fn names(&self) -> Vec<String>;

    /// One vector of `names().len()` values per request, in request order.
    fn fetch(&self, requests: &[ContextRequest]) -> Result<Vec<Vec<f64>>, ContextError>;
}

/// No context: the ranker sees the candidate generators' features only.
pub struct NoContext;

impl ContextSource for NoContext {
    fn names(&self) -> Vec<String> {
        Vec::new()
    }

    fn fetch(&self, requests: &[ContextRequest]) -> Result<Vec<Vec<f64>>, ContextError> {
        Ok(vec![Vec::new(); requests.len()])
    }
}
