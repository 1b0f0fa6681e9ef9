//! The one HTTP/2 connection every send shares: opened when first needed, by one attempt that
//! every send arriving meanwhile waits for (and whose failure they share, so an unreachable
//! FCM sees one attempt, not one per send); opened anew once it has ended or the server has
//! said GOAWAY.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use h2::client::SendRequest;
use http::HeaderValue;
use tokio::time::Instant;

use crate::connect::{ConnectError, Endpoint, KeepAlive};
use crate::exchange::{RequestHead, exchange};
use crate::response_body::Answer;

/// One connection attempt, awaited by every send that needs it.
type Connecting = Shared<BoxFuture<'static, Result<Live, ConnectError>>>;

/// An open connection.
#[derive(Clone)]
struct Live {
    /// Tells this connection from its successors.
    id: u64,
    send: SendRequest<Bytes>,
    /// Set by the connection's task when it ends.
    closed: Arc<AtomicBool>,
}

struct Attempt {
    id: u64,
    /// After this, the attempt is stale (nobody drove it to its end) and a new one is made.
    stale_at: Instant,
    result: Connecting,
}

#[derive(Default)]
struct Slot {
    live: Option<Live>,
    attempt: Option<Attempt>,
    attempts: u64,
}

/// The shared connection to FCM's send endpoint.
pub(crate) struct FcmConnection {
    endpoint: Arc<Endpoint>,
    connect_timeout: Duration,
    head: RequestHead,
    /// Guarded by a plain mutex that is never held across an `.await`.
    slot: Mutex<Slot>,
}

impl fmt::Debug for FcmConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FcmConnection")
            .field("tls", &self.endpoint.is_tls())
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

/// Why a send brought no answer: a short, token-free description.
pub(crate) type SendFailure = &'static str;

impl FcmConnection {
    pub(crate) fn new(endpoint: Endpoint, connect_timeout: Duration, head: RequestHead) -> Self {
        Self {
            endpoint: Arc::new(endpoint),
            connect_timeout,
            head,
            slot: Mutex::default(),
        }
    }

    /// Replaces the keep-alive of the connections opened from now on. Only while the sender
    /// is being built, before any send holds the endpoint.
    pub(crate) fn set_keep_alive(&mut self, keep_alive: KeepAlive) {
        if let Some(endpoint) = Arc::get_mut(&mut self.endpoint) {
            endpoint.set_keep_alive(keep_alive);
        }
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        // The slot holds no invariant a panicking holder could break halfway.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// POSTs `body` with `authorization` and reads the answer. A request the server cannot
    /// have acted on (the connection went away first) is sent once more on a new connection
    /// at once; every other failure is the caller's to retry.
    pub(crate) async fn post(
        &self,
        authorization: &HeaderValue,
        body: &Bytes,
    ) -> Result<Answer, SendFailure> {
        let mut resent = false;
        loop {
            let (id, send) = self.handle().await.map_err(ConnectError::as_str)?;
            match exchange(send, &self.head, authorization, body).await {
                Ok(answer) => return Ok(answer),
                Err(failure) => {
                    if failure.connection_gone {
                        self.discard(id);
                    }
                    if !failure.unprocessed || resent {
                        return Err(failure.reason);
                    }
                    resent = true;
                }
            }
        }
    }

    /// A handle on the open connection, opening one first if needed.
    async fn handle(&self) -> Result<(u64, SendRequest<Bytes>), ConnectError> {
        match self.open_handle() {
            Some(handle) => Ok(handle),
            // Boxed: connecting is rare and need not make every send's future larger.
            None => Box::pin(self.connect()).await,
        }
    }

    /// A handle on the connection if it is open.
    fn open_handle(&self) -> Option<(u64, SendRequest<Bytes>)> {
        let slot = self.slot();
        let live = slot.live.as_ref()?;
        (!live.closed.load(Ordering::Acquire)).then(|| (live.id, live.send.clone()))
    }

    /// Waits for the connection attempt in progress, or starts one.
    async fn connect(&self) -> Result<(u64, SendRequest<Bytes>), ConnectError> {
        let (id, connecting) = {
            let mut slot = self.slot();
            if let Some(live) = &slot.live {
                if !live.closed.load(Ordering::Acquire) {
                    return Ok((live.id, live.send.clone()));
                }
                slot.live = None;
            }
            let now = Instant::now();
            match &slot.attempt {
                Some(attempt) if attempt.stale_at > now => (attempt.id, attempt.result.clone()),
                _ => {
                    slot.attempts += 1;
                    let id = slot.attempts;
                    let result = self.attempt(id);
                    slot.attempt = Some(Attempt {
                        id,
                        stale_at: now + self.connect_timeout,
                        result: result.clone(),
                    });
                    (id, result)
                }
            }
        };
        // Whoever of the waiters is polled drives the attempt; it carries on if the one that
        // started it gives up.
        let result = connecting.await;
        let mut slot = self.slot();
        if slot
            .attempt
            .as_ref()
            .is_some_and(|attempt| attempt.id == id)
        {
            slot.attempt = None;
            if let Ok(live) = &result {
                slot.live = Some(live.clone());
            }
        }
        result.map(|live| (live.id, live.send))
    }

    fn attempt(&self, id: u64) -> Connecting {
        let endpoint = Arc::clone(&self.endpoint);
        async move {
            let established = endpoint.connect().await?;
            Ok(Live {
                id,
                send: established.send,
                closed: established.closed,
            })
        }
        .boxed()
        .shared()
    }

    /// Forgets connection `id` once a request found it going away, so the next send opens a
    /// new one while the old one finishes its streams.
    fn discard(&self, id: u64) {
        let mut slot = self.slot();
        if slot.live.as_ref().is_some_and(|live| live.id == id) {
            slot.live = None;
        }
    }
}
