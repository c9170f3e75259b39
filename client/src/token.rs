//! Where the caller's bearer token comes from: a fixed string ([`StaticToken`]) or a source
//! that renews it before it expires ([`RefreshingToken`]), behind [`TokenSource`].

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio::sync::Mutex;

/// A boxed future, as [`TokenSource::token`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Gives the caller token sent as `authorization: Bearer <token>` on each call.
///
/// Called before every call (and every reconnect of a stream), so implementations cache.
pub trait TokenSource: Send + Sync + 'static {
    /// The token to send now, or why there is none.
    fn token(&self) -> BoxFuture<'_, Result<String, String>>;
}

/// A token that never changes (e.g. from the environment, or a long-lived service token).
#[derive(Clone)]
pub struct StaticToken(String);

impl StaticToken {
    /// Sends `token` on every call.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }
}

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticToken([REDACTED])")
    }
}

impl TokenSource for StaticToken {
    fn token(&self) -> BoxFuture<'_, Result<String, String>> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}

/// A fresh token and when it stops being valid, as a [`RefreshingToken`]'s fetch returns it.
#[derive(Clone)]
pub struct IssuedToken {
    /// The token.
    pub token: String,
    /// When it expires.
    pub expires_at: SystemTime,
}

type Fetch = dyn Fn() -> BoxFuture<'static, Result<IssuedToken, String>> + Send + Sync;

/// A token fetched from an issuer (the service mesh, the portal, a file a sidecar rewrites)
/// and fetched again `margin` before it expires; callers waiting meanwhile share one fetch.
#[derive(Clone)]
pub struct RefreshingToken {
    fetch: Arc<Fetch>,
    margin: Duration,
    current: Arc<Mutex<Option<IssuedToken>>>,
}

impl RefreshingToken {
    /// Calls `fetch` for the first token and whenever the current one is within `margin` of
    /// its expiry.
    pub fn new<F, Fut>(margin: Duration, fetch: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<IssuedToken, String>> + Send + 'static,
    {
        Self {
            fetch: Arc::new(move || Box::pin(fetch())),
            margin,
            current: Arc::new(Mutex::new(None)),
        }
    }
}

impl TokenSource for RefreshingToken {
    fn token(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            let mut current = self.current.lock().await;
            let fresh_until = SystemTime::now() + self.margin;
            if let Some(t) = current.as_ref()
                && t.expires_at > fresh_until
            {
                return Ok(t.token.clone());
            }
            let issued = (self.fetch)().await?;
            let token = issued.token.clone();
            *current = Some(issued);
            Ok(token)
        })
    }
}

impl TokenSource for crate::DevToken {
    /// Mints a new development token for every call.
    fn token(&self) -> BoxFuture<'_, Result<String, String>> {
        let minted = self.mint().map_err(|e| e.to_string());
        Box::pin(async move { minted })
    }
}
