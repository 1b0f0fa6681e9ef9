//! The HTTP/2 connections to one upstream, pooled. A send (one request) takes a stream on the
//! first open connection with one free, as many as the server allows at once
//! (`SETTINGS_MAX_CONCURRENT_STREAMS`, which FCM and APNs set to 100); a connection is opened
//! only when every open one is full, up to a limit, by one attempt that every send arriving
//! meanwhile waits for (and whose failure they share, so an unreachable upstream sees one
//! attempt, not one per send). Past the limit, a send waits for a stream to be given back. A
//! connection that ended or said GOAWAY is forgotten; one of those beyond the first that
//! carried nothing for the idle time is closed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use h2::client::SendRequest;
use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};

use super::connection::{Dialer, Refusal};
use crate::settings::KeepAlive;

/// One connection attempt, awaited by every send that needs it.
type Connecting = Shared<BoxFuture<'static, Result<Opened, Refusal>>>;

/// A connection just opened.
#[derive(Clone)]
struct Opened {
    id: u64,
    send: SendRequest<Bytes>,
    closed: Arc<AtomicBool>,
}

/// An open connection in the pool.
struct Open {
    /// Tells this connection from the others and its successors.
    id: u64,
    send: SendRequest<Bytes>,
    /// Set by the connection's task when it ends.
    closed: Arc<AtomicBool>,
    /// Streams taken by sends and not yet given back.
    streams: usize,
    /// Since when no stream is taken.
    idle_since: Instant,
}

impl Open {
    fn has_room(&self) -> bool {
        // The server's SETTINGS_MAX_CONCURRENT_STREAMS, which it may change at any time.
        !self.closed.load(Ordering::Acquire) && self.streams < self.send.current_max_send_streams()
    }
}

struct Attempt {
    id: u64,
    /// After this, the attempt is stale (nobody drove it to its end) and a new one is made.
    stale_at: Instant,
    result: Connecting,
}

#[derive(Default)]
struct State {
    /// Oldest first; sends fill the oldest with room, so the newest fall idle first.
    open: Vec<Open>,
    attempt: Option<Attempt>,
    attempts: u64,
    /// Whether a task closes idle connections.
    reaping: bool,
}

impl State {
    /// Takes a stream on the first connection with one free.
    fn take_stream(&mut self) -> Option<(u64, SendRequest<Bytes>)> {
        let open = self.open.iter_mut().find(|open| open.has_room())?;
        open.streams += 1;
        Some((open.id, open.send.clone()))
    }

    fn forget_closed(&mut self, dialer: &Dialer) {
        let before = self.open.len();
        self.open
            .retain(|open| !open.closed.load(Ordering::Acquire));
        if self.open.len() < before {
            self.count_open(dialer);
        }
    }

    fn count_open(&self, dialer: &Dialer) {
        dialer.metrics.http2_connections(self.open.len());
    }

    /// Closes the connections beyond the first that carried nothing for `idle_timeout` and
    /// the ended ones; says when to look again, or `None` once one connection is left.
    fn close_idle(
        &mut self,
        dialer: &Dialer,
        now: Instant,
        idle_timeout: Duration,
    ) -> Option<Instant> {
        self.forget_closed(dialer);
        let mut index = self.open.len();
        while index > 1 {
            index -= 1;
            let open = &self.open[index];
            if open.streams == 0 && open.idle_since + idle_timeout <= now {
                // Dropping the last handle lets the connection's task say GOAWAY and end.
                self.open.remove(index);
            }
        }
        self.count_open(dialer);
        let next = self.open.iter().skip(1).map(|open| {
            if open.streams == 0 {
                open.idle_since + idle_timeout
            } else {
                now + idle_timeout
            }
        });
        next.min()
    }
}

/// What a send does when no stream is free.
enum Next {
    Take(u64, SendRequest<Bytes>),
    Connect(u64, Connecting),
    Wait,
}

/// The shared state of a [`Pool`], also held (weakly) by its idle-closing task.
struct Inner {
    dialer: Arc<Dialer>,
    max_connections: usize,
    idle_timeout: Duration,
    /// Guarded by a plain mutex that is never held across an `.await`.
    state: Mutex<State>,
    /// Told when a stream is given back (`notify_one`), a connection ends or is forgotten
    /// (`notify_waiters`).
    capacity: Arc<Notify>,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state holds no invariant a panicking holder could break halfway.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The connections every send shares.
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

/// A stream taken on a connection; given back when dropped.
pub(crate) struct Lease<'a> {
    inner: &'a Inner,
    /// The connection's id.
    connection: u64,
}

impl Lease<'_> {
    /// The connection the stream is on.
    pub(crate) fn connection(&self) -> u64 {
        self.connection
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut state = self.inner.state();
        if let Some(open) = state
            .open
            .iter_mut()
            .find(|open| open.id == self.connection)
        {
            open.streams = open.streams.saturating_sub(1);
            if open.streams == 0 {
                open.idle_since = Instant::now();
            }
        }
        drop(state);
        self.inner.capacity.notify_one();
    }
}

impl Pool {
    /// A pool of at most `max_connections` connections opened by `dialer`, none open yet;
    /// one beyond the first that carried nothing for `idle_timeout` is closed.
    pub(crate) fn new(dialer: Dialer, max_connections: usize, idle_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                dialer: Arc::new(dialer),
                max_connections: max_connections.max(1),
                idle_timeout,
                state: Mutex::default(),
                capacity: Arc::new(Notify::new()),
            }),
        }
    }

    /// Replaces the keep-alive of the connections opened from now on. Only before the first
    /// request, while nothing else holds the pool's state; later calls change nothing.
    pub(crate) fn set_keep_alive(&mut self, keep_alive: KeepAlive) {
        if let Some(dialer) =
            Arc::get_mut(&mut self.inner).and_then(|inner| Arc::get_mut(&mut inner.dialer))
        {
            dialer.keep_alive = keep_alive;
        }
    }

    /// Replaces how long an extra connection may carry nothing before it is closed. Only
    /// before the first request.
    pub(crate) fn set_idle_timeout(&mut self, idle_timeout: Duration) {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.idle_timeout = idle_timeout;
        }
    }

    /// A stream on a connection with one free, opening a connection or waiting for a stream
    /// first if needed.
    pub(crate) async fn stream(&self) -> Result<(Lease<'_>, SendRequest<Bytes>), Refusal> {
        let taken = {
            let mut state = self.inner.state();
            state.forget_closed(&self.inner.dialer);
            state.take_stream()
        };
        let (connection, send) = match taken {
            Some(taken) => taken,
            // Boxed: waiting is rare and need not make every send's future larger.
            None => Box::pin(self.wait_for_stream()).await?,
        };
        let lease = Lease {
            inner: &self.inner,
            connection,
        };
        Ok((lease, send))
    }

    /// Opens a connection or waits for a stream until one is free.
    async fn wait_for_stream(&self) -> Result<(u64, SendRequest<Bytes>), Refusal> {
        loop {
            let capacity = self.inner.capacity.notified();
            let mut capacity = std::pin::pin!(capacity);
            let next = {
                let mut state = self.inner.state();
                state.forget_closed(&self.inner.dialer);
                if let Some((id, send)) = state.take_stream() {
                    Next::Take(id, send)
                } else if state.open.len() < self.inner.max_connections {
                    let (id, connecting) = self.join_attempt(&mut state);
                    Next::Connect(id, connecting)
                } else {
                    // Registered before the lock is let go, so no stream given back is missed.
                    capacity.as_mut().enable();
                    Next::Wait
                }
            };
            match next {
                Next::Take(id, send) => return Ok((id, send)),
                Next::Connect(id, connecting) => {
                    // Whoever of the waiters is polled drives the attempt; it carries on if
                    // the one that started it gives up.
                    let opened = connecting.await?;
                    self.install(id, opened);
                }
                Next::Wait => capacity.await,
            }
        }
    }

    /// The connection attempt in progress, or a new one.
    fn join_attempt(&self, state: &mut State) -> (u64, Connecting) {
        let now = Instant::now();
        match &state.attempt {
            Some(attempt) if attempt.stale_at > now => (attempt.id, attempt.result.clone()),
            _ => {
                state.attempts += 1;
                let id = state.attempts;
                let result = self.attempt(id);
                state.attempt = Some(Attempt {
                    id,
                    stale_at: now + self.inner.dialer.connect_timeout,
                    result: result.clone(),
                });
                (id, result)
            }
        }
    }

    fn attempt(&self, id: u64) -> Connecting {
        let dialer = Arc::clone(&self.inner.dialer);
        let ended = Arc::clone(&self.inner.capacity);
        async move {
            let established = dialer.connect(ended).await?;
            Ok(Opened {
                id,
                send: established.send,
                closed: established.closed,
            })
        }
        .boxed()
        .shared()
    }

    /// Adds the connection of attempt `id` to the pool, unless another waiter did first.
    fn install(&self, id: u64, opened: Opened) {
        let mut state = self.inner.state();
        if state
            .attempt
            .as_ref()
            .is_none_or(|attempt| attempt.id != id)
        {
            return;
        }
        state.attempt = None;
        state.open.push(Open {
            id: opened.id,
            send: opened.send,
            closed: opened.closed,
            streams: 0,
            idle_since: Instant::now(),
        });
        state.count_open(&self.inner.dialer);
        if state.open.len() > 1 && !state.reaping {
            state.reaping = true;
            let inner = Arc::downgrade(&self.inner);
            tokio::spawn(close_idle_connections(inner, self.inner.idle_timeout));
        }
    }

    /// Forgets connection `id` once a request found it going away, so sends go elsewhere or
    /// open a new one while the old one finishes its streams.
    pub(crate) fn discard(&self, id: u64) {
        let mut state = self.inner.state();
        let before = state.open.len();
        state.open.retain(|open| open.id != id);
        if state.open.len() < before {
            state.count_open(&self.inner.dialer);
            drop(state);
            // Sends waiting at the connection limit may open one now.
            self.inner.capacity.notify_waiters();
        }
    }
}

/// Closes idle connections beyond the first until only one is left or the pool is gone.
async fn close_idle_connections(inner: Weak<Inner>, idle_timeout: Duration) {
    let mut next = Instant::now() + idle_timeout;
    loop {
        sleep_until(next).await;
        let Some(inner) = inner.upgrade() else { return };
        let mut state = inner.state();
        match state.close_idle(&inner.dialer, Instant::now(), idle_timeout) {
            Some(at) => next = at,
            None => {
                state.reaping = false;
                return;
            }
        }
    }
}
