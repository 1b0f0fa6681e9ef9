//! Publishes whose node is the device token (Monal's way; the protocol of fpush): no
//! registration, no secret; the `pushModule` publish option names the app (its push service,
//! credentials and topic), and `-sandbox` at the end of it the APNs sandbox. Every decision of
//! docs/push-modules.md is made here; the XMPP role only maps the outcomes to stanzas.
//!
//! Unlike fpush, a push service's passing trouble is answered `wait`, never `cancel` (ejabberd
//! drops a registration on the first `cancel`); a dead token is answered `item-not-found` and
//! remembered, so a storm of publishes for it stays here; and bursts are coalesced, not
//! dropped (`bursts.rs`).

mod bursts;
mod config;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bounded_cache::BoundedCache;
use crate::clock::{Clock, Sleeper, UnixMillis};
use crate::device::PushService;
use crate::trace::{DeliveryTrace, Hop, TraceEvent, TraceId, TraceOutcome};
use crate::waker::{WakeOutcome, WakeRequest, Waker};
use bursts::{Bursts, Turn};

pub use config::{DEFAULT_MAX_TRACKED_TOKENS, PushModulesConfig};

/// The suffix Monal adds to a module's name for tokens of development builds.
pub const SANDBOX_SUFFIX: &str = "-sandbox";

/// The longest module name looked up; longer ones name no module.
pub const MAX_MODULE_NAME_LEN: usize = 128;

/// One app behind the token-in-node role.
#[derive(Clone)]
pub struct PushModule {
    /// The push service its tokens belong to.
    pub service: PushService,
    /// Wakes devices of its builds from the store (or its only environment).
    pub waker: Arc<dyn Waker>,
    /// Wakes devices of its development builds (`<name>-sandbox`), for APNs modules.
    pub sandbox: Option<Arc<dyn Waker>>,
}

impl std::fmt::Debug for PushModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushModule")
            .field("service", &self.service)
            .field("sandbox", &self.sandbox.is_some())
            .finish_non_exhaustive()
    }
}

/// A publish as the user's server sent it (fields already taken from the stanza).
#[derive(Clone, Copy, Debug)]
pub struct TokenPublish<'a> {
    /// Whether the IQ's `from` had a resource (only accounts publish).
    pub from_has_resource: bool,
    /// `pubsub/publish/@node`: the device token.
    pub node: Option<&'a str>,
    /// The `pushModule` field of `publish-options`.
    pub module: Option<&'a str>,
}

/// What became of a publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenPublishOutcome {
    /// The push service accepted the push.
    Woken,
    /// A push for this token is planned after this publish (coalesced).
    Coalesced,
    /// The node is missing or is not a token of the module's service.
    BadNode,
    /// No module of that name (or none named and no default).
    UnknownModule,
    /// `from` had a resource.
    Forbidden,
    /// The token is dead (now, or remembered from an earlier answer).
    TokenDead,
    /// The push service could not take it now.
    Unavailable,
}

/// The token-in-node service: its modules, and the tokens it has seen lately.
pub struct PushModules {
    modules: HashMap<String, PushModule>,
    default: Option<String>,
    /// Tokens called dead, until when they are answered so without asking again. Keyed by
    /// module and token.
    dead: BoundedCache<UnixMillis>,
    remember_dead_for: UnixMillis,
    bursts: Bursts,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    trace: Option<Arc<DeliveryTrace>>,
}

impl std::fmt::Debug for PushModules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushModules")
            .field("modules", &self.modules.keys().collect::<Vec<_>>())
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}

impl PushModules {
    /// The service over `modules` (by name) with `config`'s default module and limits.
    pub fn new(
        modules: HashMap<String, PushModule>,
        config: &PushModulesConfig,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
    ) -> Self {
        let default = config.default.clone().or_else(|| {
            (modules.len() == 1)
                .then(|| modules.keys().next().cloned())
                .flatten()
        });
        Self {
            modules,
            default,
            dead: BoundedCache::new(config.max_tracked_tokens),
            remember_dead_for: millis(config.remember_dead_for),
            bursts: Bursts::new(millis(config.min_interval), config.max_tracked_tokens),
            clock,
            sleeper,
            trace: None,
        }
    }

    /// Records each push in `trace`, under the token as node.
    #[must_use]
    pub fn with_trace(mut self, trace: Arc<DeliveryTrace>) -> Self {
        self.trace = Some(trace);
        self
    }

    /// The module a publish without `pushModule` goes to.
    pub fn default_module(&self) -> Option<&str> {
        self.default.as_deref()
    }

    /// A publish: find the module, check the token, push (now, or coalesced with others).
    pub async fn publish(&self, request: TokenPublish<'_>) -> TokenPublishOutcome {
        if request.from_has_resource {
            return TokenPublishOutcome::Forbidden;
        }
        let Some((name, sandboxed, module, waker)) = self.module(request.module) else {
            return TokenPublishOutcome::UnknownModule;
        };
        let Some(token) = request
            .node
            .filter(|node| module.service.accepts_token(node))
        else {
            return TokenPublishOutcome::BadNode;
        };
        // A token of the sandbox is another token than the same digits in production.
        let suffix = if sandboxed { SANDBOX_SUFFIX } else { "" };
        let key = format!("{name}{suffix}\0{token}");
        let now = self.clock.now();
        if self.dead.get(&key).is_some_and(|until| now < until) {
            return TokenPublishOutcome::TokenDead;
        }
        let trace_id = TraceId::new();
        match self.bursts.turn(&key, now) {
            Turn::Now => {}
            Turn::Planned => return TokenPublishOutcome::Coalesced,
            Turn::At(at) => {
                let wait = Duration::from_millis(u64::try_from(at - now).unwrap_or(0));
                self.sleeper.sleep(wait).await;
                self.bursts.planned_push_starts(&key, self.clock.now());
            }
        }
        self.push(&key, token, module, waker, trace_id).await
    }

    /// The module `requested` names (the default when none): its name, whether the sandbox
    /// was asked for, the module and the waker of that environment.
    fn module(
        &self,
        requested: Option<&str>,
    ) -> Option<(&str, bool, &PushModule, &Arc<dyn Waker>)> {
        let name = match requested {
            Some(name) => name,
            None => self.default.as_deref()?,
        };
        if name.len() > MAX_MODULE_NAME_LEN {
            return None;
        }
        if let Some((name, module)) = self.modules.get_key_value(name) {
            return Some((name, false, module, &module.waker));
        }
        let base = name.strip_suffix(SANDBOX_SUFFIX)?;
        let (name, module) = self.modules.get_key_value(base)?;
        let sandbox = module.sandbox.as_ref()?;
        Some((name, true, module, sandbox))
    }

    async fn push(
        &self,
        key: &str,
        token: &str,
        module: &PushModule,
        waker: &Arc<dyn Waker>,
        trace_id: TraceId,
    ) -> TokenPublishOutcome {
        let started = Instant::now();
        let outcome = waker
            .wake(WakeRequest {
                service: module.service,
                token,
                device: None,
            })
            .await;
        let (answer, traced) = match outcome {
            WakeOutcome::Accepted => (TokenPublishOutcome::Woken, TraceOutcome::Ok),
            WakeOutcome::TokenDead => {
                let until = self.clock.now().saturating_add(self.remember_dead_for);
                self.dead.insert(key, &until);
                (TokenPublishOutcome::TokenDead, TraceOutcome::DeadToken)
            }
            WakeOutcome::Transient(reason) => {
                tracing::info!(trace = %trace_id, %reason, "push not sent now");
                (TokenPublishOutcome::Unavailable, TraceOutcome::ServerError)
            }
            WakeOutcome::Rejected(reason) => {
                tracing::warn!(trace = %trace_id, %reason, "push refused");
                (TokenPublishOutcome::Unavailable, TraceOutcome::ServerError)
            }
        };
        if let Some(trace) = &self.trace {
            trace.record(
                &trace.node_key(token),
                TraceEvent {
                    at: self.clock.now(),
                    hop: Hop::UpstreamAnswered,
                    outcome: traced,
                    latency_us: TraceEvent::saturating_micros(started.elapsed()),
                    application: None,
                    trace_id,
                },
            );
        }
        answer
    }
}

fn millis(duration: Duration) -> UnixMillis {
    UnixMillis::try_from(duration.as_millis()).unwrap_or(UnixMillis::MAX)
}

#[cfg(test)]
mod tests;
