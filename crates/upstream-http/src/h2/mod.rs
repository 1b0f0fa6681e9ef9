//! HTTP/2: pooled connections, one stream per request.

pub(crate) mod connection;
mod exchange;
mod pool;

use std::sync::Arc;
use std::time::Duration;

use crate::error::UpstreamError;
use crate::metrics::Metrics;
use crate::request::UpstreamRequest;
use crate::response::UpstreamResponse;
use crate::settings::KeepAlive;
use connection::{Dialer, Refusal};
use exchange::{Failure, exchange};
use pool::Pool;

/// Why an HTTP/2 send brought no answer.
#[derive(Debug)]
pub(crate) enum Http2Failure {
    /// The upstream speaks HTTP/1.1 (`confirmed`: it said so, rather than closed during
    /// the preface); the request was not sent.
    SpeaksHttp1 {
        /// Whether the upstream said so.
        confirmed: bool,
    },
    /// For the caller.
    Upstream(UpstreamError),
}

/// The HTTP/2 side of an upstream.
pub(crate) struct Http2 {
    pool: Pool,
    max_body: usize,
    metrics: Arc<Metrics>,
}

impl Http2 {
    pub(crate) fn new(
        dialer: Dialer,
        max_connections: usize,
        idle_timeout: Duration,
        max_body: usize,
    ) -> Self {
        let metrics = Arc::clone(&dialer.metrics);
        Self {
            pool: Pool::new(dialer, max_connections, idle_timeout),
            max_body,
            metrics,
        }
    }

    pub(crate) fn set_keep_alive(&mut self, keep_alive: KeepAlive) {
        self.pool.set_keep_alive(keep_alive);
    }

    pub(crate) fn set_idle_timeout(&mut self, idle_timeout: Duration) {
        self.pool.set_idle_timeout(idle_timeout);
    }

    /// Sends the request and reads the answer. A request the server cannot have acted on (the
    /// connection went away first, or the server refused the stream) is sent once more at
    /// once, on another connection if that one is going away; every other failure is the
    /// caller's to retry.
    pub(crate) async fn send(
        &self,
        request: &UpstreamRequest,
    ) -> Result<UpstreamResponse, Http2Failure> {
        let mut resent = false;
        loop {
            let (stream, send) = self.pool.stream().await.map_err(|refusal| match refusal {
                Refusal::Http1 { confirmed } => Http2Failure::SpeaksHttp1 { confirmed },
                Refusal::Failed(failure) => Http2Failure::Upstream(failure.into()),
            })?;
            // The stream is given back when `stream` is dropped, once the answer is read.
            match exchange(send, request, self.max_body).await {
                Ok(answer) => return Ok(answer),
                Err(Failure::Final(error)) => return Err(Http2Failure::Upstream(error)),
                Err(Failure::Stream(failure)) => {
                    if failure.connection_gone {
                        self.pool.discard(stream.connection());
                    }
                    if !failure.unprocessed || resent {
                        return Err(Http2Failure::Upstream(UpstreamError::Connection));
                    }
                    resent = true;
                    self.metrics.resent();
                }
            }
        }
    }
}
