//! A send over the pooled HTTP/2 connections: a stream taken, the exchange, the stream given
//! back; a request the server cannot have acted on is sent once more at once.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;

use crate::connect::{ConnectError, Endpoint, KeepAlive};
use crate::exchange::{RequestHead, exchange};
use crate::pool::Pool;
use crate::response_body::Answer;

/// The connections to FCM's send endpoint, with what every request on them shares.
pub(crate) struct FcmConnection {
    pool: Pool,
    head: RequestHead,
}

impl fmt::Debug for FcmConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FcmConnection")
            .field("tls", &self.pool.is_tls())
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

/// Why a send brought no answer: a short, token-free description.
pub(crate) type SendFailure = &'static str;

impl FcmConnection {
    /// Sends to `endpoint` over at most `max_connections` connections, none open yet.
    pub(crate) fn new(
        endpoint: Endpoint,
        connect_timeout: Duration,
        max_connections: usize,
        head: RequestHead,
    ) -> Self {
        Self {
            pool: Pool::new(endpoint, connect_timeout, max_connections),
            head,
        }
    }

    /// Replaces the keep-alive of the connections opened from now on. Only while the sender
    /// is being built.
    pub(crate) fn set_keep_alive(&mut self, keep_alive: KeepAlive) {
        self.pool.set_keep_alive(keep_alive);
    }

    /// Replaces how long a connection beyond the first may carry nothing before it is
    /// closed. Only while the sender is being built.
    pub(crate) fn set_idle_timeout(&mut self, idle_timeout: Duration) {
        self.pool.set_idle_timeout(idle_timeout);
    }

    /// POSTs `body` with `authorization` and reads the answer. A request the server cannot
    /// have acted on (the connection went away first, or the server refused the stream) is
    /// sent once more at once, on another connection if that one is going away; every other
    /// failure is the caller's to retry.
    pub(crate) async fn post(
        &self,
        authorization: &HeaderValue,
        body: &Bytes,
    ) -> Result<Answer, SendFailure> {
        let mut resent = false;
        loop {
            let (stream, send) = self.pool.stream().await.map_err(ConnectError::as_str)?;
            // The stream is given back when `stream` is dropped, once the answer is read.
            match exchange(send, &self.head, authorization, body).await {
                Ok(answer) => return Ok(answer),
                Err(failure) => {
                    if failure.connection_gone {
                        self.pool.discard(stream.connection());
                    }
                    if !failure.unprocessed || resent {
                        return Err(failure.reason);
                    }
                    resent = true;
                }
            }
        }
    }
}
