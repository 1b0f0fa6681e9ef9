//! The instances that share one PostgreSQL database and serve one UnifiedPush link, reaching
//! each other through it with `LISTEN`/`NOTIFY` (docs/several-instances.md explains the
//! choice over HTTP between instances):
//!
//! - **Handover.** An instance that does not hold the link (a standby) hands each push to the
//!   instance that holds the link's lease (the database says which: [`crate::hold_link_lease`]
//!   reads it), on that instance's own channel, and waits for the client's answer on its own.
//!   When no instance holds the lease, or the holder's link is not up, or no answer comes
//!   within the client's deadline and a margin, the message is kept as for a client that is
//!   away.
//! - **Kept messages.** Each message an instance keeps is announced on the link's channel, so
//!   that whichever instance sees its owner come back flushes it; the holder of a `single`
//!   link flushes it at once, since it was kept only because nobody held the link.
//! - **Lost notifications** only delay: a push whose answer is lost is kept (and may reach
//!   the client twice, as delivery is at least once), and a listener that reconnects reads
//!   the owners with kept messages from the database again.
//!
//! A handover carries the endpoint token (sealed) and the body; an announcement carries the
//! owner's key (a hash). No JID crosses, and nothing carried is logged.

use std::collections::{HashMap, HashSet};
use std::str::FromStr as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use pushgate_core::client_link::{ClientLink, PushDelivery, UpPush};
use pushgate_core::provider::{OwnerFlush, PeerInstances, Provider};
use pushgate_core::store::OwnerKey;
use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// PostgreSQL refuses a notification payload of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7999;
/// How long the listener waits before connecting again after it failed to.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);
/// Connections for sending notifications: each send holds one for a moment.
const SEND_CONNECTIONS: u32 = 4;
/// Connections for owners' flush locks: each is held while its flush runs.
const LOCK_CONNECTIONS: u32 = 16;
/// How long a flush waits for a lock connection before it goes ahead without the lock.
const LOCK_WAIT: Duration = Duration::from_secs(2);
/// How often the instances alive are read.
const LIVE_EVERY: Duration = Duration::from_secs(1);

/// What the holder of the link may take, beyond the client's own deadline, to send back the
/// client's answer: two notifications and a moment of load.
pub const HANDOVER_MARGIN: Duration = Duration::from_secs(1);

/// How long a handover may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandoverTimeouts {
    /// How long the holder has to say what the client answered: the client's own deadline and
    /// [`HANDOVER_MARGIN`].
    pub answer: Duration,
}

impl HandoverTimeouts {
    /// The client's `push_timeout` and [`HANDOVER_MARGIN`].
    pub fn new(push_timeout: Duration) -> Self {
        Self {
            answer: push_timeout + HANDOVER_MARGIN,
        }
    }
}

/// The database URL does not parse as PostgreSQL's.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PeerBusError(#[from] sqlx::Error);

/// Whether this instance holds the UnifiedPush link now.
pub type HoldsLink = Arc<dyn Fn() -> bool + Send + Sync>;

/// This instance's end of its link's channel. Cheap to clone.
#[derive(Clone)]
pub struct PeerBus(Arc<Inner>);

struct Inner {
    pool: PgPool,
    /// This process's instance id (the first part of its IQ ids); names its own channel.
    instance: String,
    /// The schema, read by the listener; scopes the owners' flush locks.
    schema: OnceLock<String>,
    /// Connections for the owners' flush locks, each held while its flush runs.
    locks: PgPool,
    /// The instances seen alive lately (their sessions' `application_name`).
    live: Mutex<Option<HashSet<String>>>,
    /// Where answers to this instance's IQs that reached another instance go.
    answers: OnceLock<AnswerSink>,
    /// Which instance holds the link's lease, as the lease task last read it.
    holder: OnceLock<watch::Receiver<Option<String>>>,
    /// The link's JID.
    component: String,
    /// Where handovers and announcements for the link go; every instance listens. Named by
    /// the schema and the link, so known once the listener read the schema.
    link_channel: OnceLock<String>,
    /// Where the answers to this instance's handovers come.
    own_channel: String,
    timeouts: HandoverTimeouts,
    next_request: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<PushDelivery>>>,
    serving: OnceLock<Serving>,
    /// The listener and the watcher of live instances.
    listener: OnceLock<(JoinHandle<()>, JoinHandle<()>)>,
}

/// Completes this instance's IQ request with an answer another instance forwarded (its XML);
/// whether it answered one.
pub type AnswerSink = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What this instance does for the others, once its provider exists.
struct Serving {
    provider: Arc<Provider>,
    holds_link: HoldsLink,
    /// Whether the link is `single`: then only the holder can reach clients, and a message
    /// another instance kept is flushed by the holder at once.
    flush_when_heard: bool,
}

/// One notification on either channel.
#[derive(Debug, PartialEq, Eq)]
enum Notice<'a> {
    /// `h {from} {request} {token} {body}`: a push handed over.
    Handover {
        from: &'a str,
        request: u64,
        token: &'a str,
        body: &'a str,
    },
    /// `k {from} {owner key}`: a message of this owner was kept.
    Kept { from: &'a str, owner: &'a str },
    /// `x {iq}`: an answer to one of this instance's IQs that reached another instance.
    Answered { iq: &'a str },
    /// `r {request} d|v|n`: what the client answered (delivered, revoked, not delivered).
    Answer { request: u64, delivery: char },
}

impl<'a> Notice<'a> {
    fn decode(payload: &'a str) -> Option<Self> {
        if let Some(iq) = payload.strip_prefix("x ") {
            return iq.starts_with("<iq").then_some(Self::Answered { iq });
        }
        let mut words = payload.split(' ');
        let notice = match words.next()? {
            "h" => Self::Handover {
                from: instance_id(words.next()?)?,
                request: u64::from_str_radix(words.next()?, 16).ok()?,
                token: words.next()?,
                body: words.next()?,
            },
            "k" => {
                let from = instance_id(words.next()?)?;
                let owner = words.next()?;
                if owner.len() != 64 || !owner.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                Self::Kept { from, owner }
            }
            "r" => {
                let request = u64::from_str_radix(words.next()?, 16).ok()?;
                let delivery = match words.next()? {
                    "d" => 'd',
                    "v" => 'v',
                    "n" => 'n',
                    _ => return None,
                };
                Self::Answer { request, delivery }
            }
            _ => return None,
        };
        words.next().is_none().then_some(notice)
    }
}

/// An instance id: 1 to 32 ASCII letters or digits.
fn instance_id(word: &str) -> Option<&str> {
    (!word.is_empty() && word.len() <= 32 && word.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some(word)
}

/// The `application_name` of this instance's sessions, by which the others see it alive.
pub(crate) fn application_name(instance: &str) -> String {
    format!("{APPLICATION_NAME_PREFIX}{instance}")
}

/// What every instance's `application_name` starts with.
pub const APPLICATION_NAME_PREFIX: &str = "pushgate-instance ";

fn answer_code(delivery: &PushDelivery) -> char {
    match delivery {
        PushDelivery::Delivered => 'd',
        PushDelivery::Revoked => 'v',
        PushDelivery::NotDelivered(_) => 'n',
    }
}

fn delivery_of(code: char) -> PushDelivery {
    match code {
        'd' => PushDelivery::Delivered,
        'v' => PushDelivery::Revoked,
        _ => PushDelivery::NotDelivered("the instance holding the link could not deliver".into()),
    }
}

/// The channel of the UnifiedPush link `component` in `schema`: the same in every instance.
fn link_channel(schema: &str, component: &str) -> String {
    format!(
        "pushgate_up_{:016x}",
        crate::link_lease_key(schema, component)
    )
}

impl PeerBus {
    /// Joins the instances serving the UnifiedPush link `component` on the PostgreSQL
    /// database at `url`, as `instance` (the id its IQ ids start with). Nothing is served for
    /// the others until [`Self::serve`].
    pub fn start(
        url: &str,
        component: &str,
        instance: &str,
        timeouts: HandoverTimeouts,
    ) -> Result<Self, PeerBusError> {
        let options =
            PgConnectOptions::from_str(url)?.application_name(&application_name(instance));
        // A notification need not survive a crash of the database (a lost one only delays),
        // so its transaction's commit does not wait for the WAL to reach the disk.
        let pool = PgPoolOptions::new()
            .max_connections(SEND_CONNECTIONS)
            .connect_lazy_with(options.clone().options([("synchronous_commit", "off")]));
        let locks = PgPoolOptions::new()
            .max_connections(LOCK_CONNECTIONS)
            .acquire_timeout(LOCK_WAIT)
            .connect_lazy_with(options.clone());
        crate::metrics::peers_started();
        let bus = Self(Arc::new(Inner {
            pool,
            locks,
            instance: instance.to_owned(),
            schema: OnceLock::new(),
            live: Mutex::new(None),
            answers: OnceLock::new(),
            holder: OnceLock::new(),
            component: component.to_owned(),
            link_channel: OnceLock::new(),
            own_channel: own_channel(instance),
            timeouts,
            next_request: AtomicU64::new(0),
            waiting: Mutex::new(HashMap::new()),
            serving: OnceLock::new(),
            listener: OnceLock::new(),
        }));
        let listener = tokio::spawn(listen(options, Arc::downgrade(&bus.0)));
        let watcher = tokio::spawn(watch_live(Arc::downgrade(&bus.0)));
        // Set once, here.
        let _ = bus.0.listener.set((listener, watcher));
        Ok(bus)
    }

    /// Serves the others from now on: handovers while `holds_link` says this instance holds
    /// the link, and announcements of kept messages. The owners with kept messages are read
    /// from the database once now, for what was announced before.
    pub fn serve(&self, provider: Arc<Provider>, holds_link: HoldsLink, flush_when_heard: bool) {
        let serving = Serving {
            provider: Arc::clone(&provider),
            holds_link,
            flush_when_heard,
        };
        if self.0.serving.set(serving).is_ok() {
            tokio::spawn(resync(provider));
        }
    }

    /// Completes this instance's IQ requests with the answers other instances forward, through
    /// `sink`.
    pub fn take_answers(&self, sink: AnswerSink) {
        let _ = self.0.answers.set(sink);
    }

    /// Forwards `answer` (an IQ result or error, as XML) to `instance`, whose IQ it answers.
    /// Dropped, and counted, when that instance is gone or the answer is too large.
    pub fn forward_answer(&self, instance: &str, answer: String) {
        let inner = &self.0;
        if instance_id(instance).is_none() {
            crate::metrics::forwarded_answer("unreadable");
            return;
        }
        let payload = format!("x {answer}");
        if payload.len() > MAX_PAYLOAD {
            crate::metrics::forwarded_answer("too_large");
            return;
        }
        let seen_alive = lock(&inner.live)
            .as_ref()
            .is_none_or(|live| live.contains(instance));
        let inner = Arc::clone(inner);
        let instance = instance.to_owned();
        tokio::spawn(async move {
            // Not among those alive a moment ago: it may have started since; ask again.
            if !seen_alive {
                match live_instances(&inner.pool).await {
                    Ok(live) => {
                        let gone = !live.contains(&instance);
                        *lock(&inner.live) = Some(live);
                        if gone {
                            crate::metrics::forwarded_answer("owner_gone");
                            return;
                        }
                    }
                    Err(error) => tracing::debug!(%error, "the instances alive cannot be read"),
                }
            }
            match notify(&inner.pool, &own_channel(&instance), &payload).await {
                Ok(()) => crate::metrics::forwarded_answer("forwarded"),
                Err(error) => {
                    crate::metrics::forwarded_answer("send_failed");
                    tracing::debug!(%error, "IQ answer not forwarded");
                }
            }
        });
    }

    /// This instance's id.
    pub fn instance(&self) -> &str {
        &self.0.instance
    }

    /// A [`ClientLink`] that pushes through `local` while this instance holds the link, and
    /// hands pushes over otherwise.
    pub fn client_link(&self, local: Arc<dyn ClientLink>, holds_link: HoldsLink) -> HandoverLink {
        HandoverLink {
            local,
            holds_link,
            bus: self.clone(),
        }
    }

    /// Hands `push` to the instance that holds the link and says what its client answered.
    async fn hand_over(&self, push: UpPush<'_>) -> PushDelivery {
        let inner = &self.0;
        let holder = inner
            .holder
            .get()
            .and_then(|holder| holder.borrow().clone())
            .filter(|holder| *holder != inner.instance);
        let Some(holder) = holder else {
            crate::metrics::handover("no_holder");
            return PushDelivery::NotDelivered("no other instance holds the link".into());
        };
        let request = inner.next_request.fetch_add(1, Ordering::Relaxed);
        let payload = format!(
            "h {} {request:x} {} {}",
            inner.instance,
            push.endpoint_token,
            STANDARD.encode(push.body)
        );
        if payload.len() > MAX_PAYLOAD || push.endpoint_token.contains(' ') {
            crate::metrics::handover("too_large");
            return PushDelivery::NotDelivered("too large to hand over".into());
        }
        let (answer, answered_by) = oneshot::channel();
        lock(&inner.waiting).insert(request, answer);
        let _waiting = Waiting { inner, request };
        if let Err(error) = notify(&inner.pool, &own_channel(&holder), &payload).await {
            crate::metrics::handover("send_failed");
            tracing::debug!(%error, "handover not sent");
            return PushDelivery::NotDelivered("the handover could not be sent".into());
        }
        match tokio::time::timeout(inner.timeouts.answer, answered_by).await {
            Ok(Ok(delivery)) => answered(delivery),
            Ok(Err(_)) | Err(_) => {
                crate::metrics::handover("timeout");
                PushDelivery::NotDelivered("the instance holding the link did not answer".into())
            }
        }
    }

    /// Hands pushes, from now on, to the instance `holder` names: the holder of the link's
    /// lease, as the lease task reads it from the database.
    pub fn follow_holder(&self, holder: watch::Receiver<Option<String>>) {
        let _ = self.0.holder.set(holder);
    }
}

fn own_channel(instance: &str) -> String {
    format!("pushgate_i_{instance}")
}

fn answered(delivery: PushDelivery) -> PushDelivery {
    crate::metrics::handover(match delivery {
        PushDelivery::Delivered => "delivered",
        PushDelivery::Revoked => "revoked",
        PushDelivery::NotDelivered(_) => "not_delivered",
    });
    delivery
}

/// Removes a handover from the waiting table however it ends.
struct Waiting<'a> {
    inner: &'a Inner,
    request: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        lock(&self.inner.waiting).remove(&self.request);
    }
}

/// An owner's flush lock (a session-level advisory lock), given back when dropped.
struct OwnerLock {
    connection: Option<PoolConnection<Postgres>>,
    key: i64,
}

impl Drop for OwnerLock {
    fn drop(&mut self) {
        let Some(mut connection) = self.connection.take() else {
            return;
        };
        let key = self.key;
        tokio::spawn(async move {
            let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(key)
                .execute(&mut *connection)
                .await;
            if unlocked.is_err() {
                // Never back into the pool holding the lock: the session ends, and the lock
                // with it.
                let _ = connection.close().await;
            }
        });
    }
}

#[async_trait]
impl PeerInstances for PeerBus {
    fn messages_kept(&self, owner: &OwnerKey) {
        let inner = Arc::clone(&self.0);
        let Some(channel) = inner.link_channel.get().cloned() else {
            // Before the listener read the schema; the others read the store when they
            // (re)connect.
            crate::metrics::peer_notice("send_failed");
            return;
        };
        let payload = format!("k {} {}", inner.instance, owner.as_str());
        tokio::spawn(async move {
            if let Err(error) = notify(&inner.pool, &channel, &payload).await {
                crate::metrics::peer_notice("send_failed");
                tracing::debug!(%error, "announcement of a kept message not sent");
            }
        });
    }

    async fn flush_owner(&self, owner: &OwnerKey) -> OwnerFlush {
        let inner = &self.0;
        let Some(schema) = inner.schema.get() else {
            return OwnerFlush::Granted(Box::new(()));
        };
        let key = owner_lock_key(schema, owner);
        let mut connection = match inner.locks.acquire().await {
            Ok(connection) => connection,
            Err(error) => {
                crate::metrics::peer_notice("flush_lock_failed");
                tracing::debug!(%error, "an owner's flush lock could not be asked for");
                return OwnerFlush::Granted(Box::new(()));
            }
        };
        let taken: Result<bool, _> = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut *connection)
            .await;
        match taken {
            Ok(true) => OwnerFlush::Granted(Box::new(OwnerLock {
                connection: Some(connection),
                key,
            })),
            Ok(false) => {
                crate::metrics::peer_notice("flush_left_to_another");
                OwnerFlush::Busy
            }
            Err(error) => {
                crate::metrics::peer_notice("flush_lock_failed");
                tracing::debug!(%error, "an owner's flush lock could not be asked for");
                OwnerFlush::Granted(Box::new(()))
            }
        }
    }
}

/// The advisory lock key of `owner`'s flush in `schema`.
fn owner_lock_key(schema: &str, owner: &OwnerKey) -> i64 {
    crate::link_lease_key(schema, &format!("owner:{}", owner.as_str()))
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some((listener, watcher)) = self.listener.get() {
            listener.abort();
            watcher.abort();
        }
    }
}

impl std::fmt::Debug for PeerBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerBus")
            .field("instance", &self.0.instance)
            .field("link_channel", &self.0.link_channel.get())
            .finish_non_exhaustive()
    }
}

/// A [`ClientLink`] that hands pushes over while this instance does not hold the link.
pub struct HandoverLink {
    local: Arc<dyn ClientLink>,
    holds_link: HoldsLink,
    bus: PeerBus,
}

#[async_trait]
impl ClientLink for HandoverLink {
    async fn push(&self, push: UpPush<'_>) -> PushDelivery {
        if (self.holds_link)() {
            self.local.push(push).await
        } else {
            self.bus.hand_over(push).await
        }
    }
}

async fn notify(pool: &PgPool, channel: &str, payload: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(pool)
        .await
        .map(|_| ())
}

async fn resync(provider: Arc<Provider>) {
    if let Err(error) = provider.note_all_pending().await {
        tracing::warn!(%error, "reading the owners with kept messages failed");
    }
}

/// The instances alive: those with a session on the database (a killed one's sessions end
/// with its sockets), read every [`LIVE_EVERY`].
async fn watch_live(bus: std::sync::Weak<Inner>) {
    loop {
        let Some(inner) = bus.upgrade() else { return };
        let pool = inner.pool.clone();
        drop(inner);
        let live = live_instances(&pool).await;
        let Some(inner) = bus.upgrade() else { return };
        match live {
            Ok(live) => *lock(&inner.live) = Some(live),
            // Unknown: nothing is dropped as gone meanwhile.
            Err(_) => *lock(&inner.live) = None,
        }
        drop(inner);
        tokio::time::sleep(LIVE_EVERY).await;
    }
}

/// The ids of the instances with a session on the database `pool` reaches.
pub async fn live_instances(pool: &PgPool) -> Result<HashSet<String>, sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT application_name FROM pg_stat_activity \
         WHERE datname = current_database() AND starts_with(application_name, $1)",
    )
    .bind(APPLICATION_NAME_PREFIX)
    .fetch_all(pool)
    .await?;
    Ok(names
        .iter()
        .filter_map(|name| name.strip_prefix(APPLICATION_NAME_PREFIX))
        .map(str::to_owned)
        .collect())
}

/// The listener: connects, listens on both channels, and acts on what arrives, for as long as
/// the bus lives.
async fn listen(options: PgConnectOptions, bus: std::sync::Weak<Inner>) {
    let (component, own_channel) = match bus.upgrade() {
        Some(inner) => (inner.component.clone(), inner.own_channel.clone()),
        None => return,
    };
    loop {
        let connected = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options.clone());
        let mut listener = match PgListener::connect_with(&connected).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen to the other instances; retrying");
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        let schema = match crate::lease::current_schema(&mut listener).await {
            Ok(schema) => schema,
            Err(error) => {
                tracing::warn!(%error, "cannot listen to the other instances; retrying");
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        let link_channel = link_channel(&schema, &component);
        match bus.upgrade() {
            // The schema is the same on every connection to the same URL.
            Some(inner) => {
                let _ = inner.link_channel.set(link_channel.clone());
                let _ = inner.schema.set(schema);
            }
            None => return,
        }
        if let Err(error) = listener
            .listen_all([link_channel.as_str(), own_channel.as_str()])
            .await
        {
            tracing::warn!(%error, "cannot listen to the other instances; retrying");
            tokio::time::sleep(RECONNECT_PAUSE).await;
            continue;
        }
        // What was announced while nobody listened is in the database.
        if let Some(serving) = bus.upgrade().and_then(|inner| {
            inner
                .serving
                .get()
                .map(|serving| Arc::clone(&serving.provider))
        }) {
            tokio::spawn(resync(serving));
        }
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    let Some(inner) = bus.upgrade() else { return };
                    match Notice::decode(notification.payload()) {
                        Some(notice) => act(&inner, notice),
                        None => crate::metrics::peer_notice("unreadable"),
                    }
                }
                Ok(None) => {
                    crate::metrics::peer_notice("listener_reconnected");
                    let Some(inner) = bus.upgrade() else { return };
                    if let Some(serving) = inner.serving.get() {
                        tokio::spawn(resync(Arc::clone(&serving.provider)));
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "notifications from the other instances lost; listening anew");
                    break;
                }
            }
        }
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
}

fn act(inner: &Arc<Inner>, notice: Notice<'_>) {
    match notice {
        Notice::Answer { request, delivery } => {
            if let Some(waiting) = lock(&inner.waiting).remove(&request) {
                // The asker may have given up meanwhile.
                let _ = waiting.send(delivery_of(delivery));
            }
        }
        Notice::Answered { iq } => {
            crate::metrics::forwarded_answer("received");
            let resolved = inner.answers.get().is_some_and(|sink| sink(iq));
            // Unknown: the request timed out meanwhile, or the sender was not the one asked.
            crate::metrics::forwarded_answer(if resolved { "resolved" } else { "unknown" });
        }
        Notice::Kept { from, .. } if from == inner.instance => {}
        Notice::Kept { owner, .. } => {
            let Some(serving) = inner.serving.get() else {
                return;
            };
            crate::metrics::peer_notice("kept_heard");
            let owner = OwnerKey::from_stored(owner);
            if serving.flush_when_heard && (serving.holds_link)() {
                let provider = Arc::clone(&serving.provider);
                tokio::spawn(async move {
                    provider.flush_kept_for(owner).await;
                });
            } else {
                serving.provider.note_pending(owner);
            }
        }
        Notice::Handover {
            from,
            request,
            token,
            body,
        } => {
            let Some(serving) = inner.serving.get() else {
                return;
            };
            if from == inner.instance {
                return;
            }
            let provider = Arc::clone(&serving.provider);
            let holds_link = (serving.holds_link)();
            let pool = inner.pool.clone();
            let token = token.to_owned();
            let body = STANDARD.decode(body);
            let channel = own_channel(from);
            tokio::spawn(async move {
                crate::metrics::peer_notice("handover_served");
                // Not up here (the link is reconnecting, or the lease was just lost): said at
                // once, so the asker keeps the message without waiting.
                let delivery = match (holds_link, body) {
                    (true, Ok(body)) => provider.relay(&token, &body).await.unwrap_or_else(|| {
                        PushDelivery::NotDelivered("token does not open".into())
                    }),
                    (false, _) => PushDelivery::NotDelivered("link not up".into()),
                    (true, Err(_)) => PushDelivery::NotDelivered("unreadable body".into()),
                };
                let answer = format!("r {request:x} {}", answer_code(&delivery));
                if let Err(error) = notify(&pool, &channel, &answer).await {
                    tracing::debug!(%error, "handover answer not sent");
                }
            });
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_read_back_and_nothing_else_does() {
        assert_eq!(
            Notice::decode("h 0a1b2c3d 1a v2.local.abc aGk="),
            Some(Notice::Handover {
                from: "0a1b2c3d",
                request: 0x1a,
                token: "v2.local.abc",
                body: "aGk="
            })
        );
        assert_eq!(
            Notice::decode("h 0a1b2c3d 1a v2.local.abc "),
            Some(Notice::Handover {
                from: "0a1b2c3d",
                request: 0x1a,
                token: "v2.local.abc",
                body: ""
            })
        );
        let owner = "ab".repeat(32);
        assert_eq!(
            Notice::decode(&format!("k 0a1b2c3d {owner}")),
            Some(Notice::Kept {
                from: "0a1b2c3d",
                owner: &owner
            })
        );
        assert_eq!(
            Notice::decode("x <iq type='result' id='0a1b2c3d.7'/>"),
            Some(Notice::Answered {
                iq: "<iq type='result' id='0a1b2c3d.7'/>"
            })
        );
        assert_eq!(
            Notice::decode("r 7 v"),
            Some(Notice::Answer {
                request: 7,
                delivery: 'v'
            })
        );
        for foreign in [
            "",
            "x 1",
            "a",
            "a zz",
            "a 7 extra",
            "r 7 q",
            "k 1 short",
            "k 1 alice@example.test",
            "h 1 2 token",
            "h 1 2 token body extra",
            "h no-dash 2 token body",
            "k 1 short",
        ] {
            assert_eq!(Notice::decode(foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn every_answer_code_reads_back() {
        for delivery in [
            PushDelivery::Delivered,
            PushDelivery::Revoked,
            PushDelivery::NotDelivered("x".into()),
        ] {
            let code = answer_code(&delivery);
            assert_eq!(
                std::mem::discriminant(&delivery_of(code)),
                std::mem::discriminant(&delivery)
            );
        }
    }

    #[test]
    fn the_channel_is_a_short_identifier_the_same_everywhere() {
        let channel = link_channel("public", "up.example.org");
        assert_eq!(channel, link_channel("public", "up.example.org"));
        assert_ne!(channel, link_channel("public", "up.example.net"));
        assert_ne!(channel, link_channel("tenant2", "up.example.org"));
        assert!(channel.len() < 64);
        assert!(
            channel
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        );
    }
}
