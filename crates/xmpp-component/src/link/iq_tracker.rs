//! Outgoing IQs waiting for their answer.
//!
//! Ids are `<instance>.<counter>` so that, once several instances share one component JID, an
//! answer can be routed to the instance that asked. An answer counts only if its id is known
//! AND its `from` equals the request's `to` (as Conversations checks): anyone else could guess
//! an id.
//!
//! Deadlines are kept here too, with one timer for the whole table instead of one per request
//! ([`IqTracker::expire_overdue`]): a request is the hottest path of the provider, and a timer
//! per request costs a wheel insertion and removal each time and, whenever its deadline is the
//! earliest, a wake-up of the runtime's driver through the kernel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::Jid;

use crate::link::error::IqError;

struct Pending {
    expected_from: Jid,
    answer: oneshot::Sender<Result<Iq, IqError>>,
    deadline: Instant,
}

/// What became of an incoming IQ result or error.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// It answered a pending request.
    Answered,
    /// Nobody asked (unknown id): dropped.
    Unsolicited,
    /// The id is pending but `from` is not the request's `to`: dropped, the request still waits.
    WrongSender,
}

/// The table of pending IQs of one link.
pub(crate) struct IqTracker {
    instance_id: String,
    counter: AtomicU64,
    table: Mutex<Table>,
    /// Tells [`Self::expire_overdue`] that a request is due before the time it sleeps until.
    earlier_deadline: Notify,
}

struct Table {
    pending: HashMap<String, Pending>,
    /// When [`IqTracker::expire_overdue`] looks next; `None` while it waits for a request. It
    /// may be earlier than any pending deadline (the request it was set for was answered):
    /// then it looks, finds nothing due, and sleeps until the earliest one.
    next_check: Option<Instant>,
}

impl IqTracker {
    pub(crate) fn new(instance_id: String) -> Self {
        Self {
            instance_id,
            counter: AtomicU64::new(0),
            table: Mutex::new(Table {
                pending: HashMap::new(),
                next_check: None,
            }),
            earlier_deadline: Notify::new(),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh id, `<instance>.<counter>`.
    pub(crate) fn next_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{}.{n}", self.instance_id)
    }

    /// Registers a request that fails with [`IqError::Timeout`] unless answered by `deadline`
    /// (while [`Self::expire_overdue`] runs); the returned guard removes it again when dropped.
    pub(crate) fn register(
        self: &Arc<Self>,
        id: String,
        expected_from: Jid,
        deadline: Instant,
    ) -> (PendingGuard, oneshot::Receiver<Result<Iq, IqError>>) {
        let (answer, rx) = oneshot::channel();
        let mut table = self.table();
        table.pending.insert(
            id.clone(),
            Pending {
                expected_from,
                answer,
                deadline,
            },
        );
        if table.next_check.is_none_or(|next| deadline < next) {
            table.next_check = Some(deadline);
            drop(table);
            self.earlier_deadline.notify_one();
        }
        let guard = PendingGuard {
            tracker: Arc::clone(self),
            id,
        };
        (guard, rx)
    }

    /// This instance's id, the first part of its IQ ids.
    pub(crate) fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Hands an incoming result or error to whoever waits for it.
    pub(crate) fn resolve(&self, iq: Iq) -> Resolution {
        let mut table = self.table();
        let table = &mut table.pending;
        let Some(pending) = table.get(iq.id()) else {
            return Resolution::Unsolicited;
        };
        if iq.from() != Some(&pending.expected_from) {
            return Resolution::WrongSender;
        }
        let Some(pending) = table.remove(iq.id()) else {
            return Resolution::Unsolicited;
        };
        // The waiter may have given up in the meantime; then the answer is simply dropped.
        let _ = pending.answer.send(Ok(iq));
        Resolution::Answered
    }

    /// Fails every pending request at once with [`IqError::LinkDown`].
    pub(crate) fn fail_all(&self) -> usize {
        let drained: Vec<Pending> = self.table().pending.drain().map(|(_, p)| p).collect();
        let n = drained.len();
        for pending in drained {
            let _ = pending.answer.send(Err(IqError::LinkDown));
        }
        n
    }

    /// Number of requests waiting.
    pub(crate) fn len(&self) -> usize {
        self.table().pending.len()
    }

    /// Fails each request with [`IqError::Timeout`] once its deadline passes; runs until
    /// dropped. With a constant deadline per request, the timer is set once per deadline period
    /// at most, however many requests come and go.
    pub(crate) async fn expire_overdue(&self) {
        loop {
            let next_check = self.table().next_check;
            let Some(at) = next_check else {
                self.earlier_deadline.notified().await;
                continue;
            };
            tokio::select! {
                () = tokio::time::sleep_until(at) => self.fail_overdue(Instant::now()),
                // A request due earlier came in: sleep until its deadline instead.
                () = self.earlier_deadline.notified() => {}
            }
        }
    }

    /// Fails the requests due by `now` and sets when to look next.
    fn fail_overdue(&self, now: Instant) {
        let mut table = self.table();
        let overdue: Vec<Pending> = table
            .pending
            .extract_if(|_, pending| pending.deadline <= now)
            .map(|(_, pending)| pending)
            .collect();
        table.next_check = table.pending.values().map(|pending| pending.deadline).min();
        drop(table);
        for pending in overdue {
            // The waiter may have given up in the meantime.
            let _ = pending.answer.send(Err(IqError::Timeout));
        }
    }
}

/// Removes a pending request when its waiter is done or gives up.
pub(crate) struct PendingGuard {
    tracker: Arc<IqTracker>,
    id: String,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.tracker.table().pending.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn jid(s: &str) -> Jid {
        Jid::new(s).unwrap()
    }

    fn result(id: &str, from: &str) -> Iq {
        Iq::Result {
            from: Some(jid(from)),
            to: Some(jid("push.example.test")),
            id: id.to_owned(),
            payload: None,
        }
    }

    #[test]
    fn ids_carry_the_instance_and_count_up() {
        let tracker = IqTracker::new("a1b2".into());
        assert_eq!(tracker.next_id(), "a1b2.0");
        assert_eq!(tracker.next_id(), "a1b2.1");
    }

    /// Far enough ahead that no test reaches it.
    fn later() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[tokio::test]
    async fn answer_needs_matching_id_and_sender() {
        let tracker = Arc::new(IqTracker::new("i".into()));
        let (_guard, mut rx) =
            tracker.register("i.0".into(), jid("alice@example.test/phone"), later());
        assert_eq!(
            tracker.resolve(result("i.9", "alice@example.test/phone")),
            Resolution::Unsolicited
        );
        assert_eq!(
            tracker.resolve(result("i.0", "mallory@example.test/x")),
            Resolution::WrongSender
        );
        assert!(rx.try_recv().is_err(), "a spoofed answer must not resolve");
        assert_eq!(
            tracker.resolve(result("i.0", "alice@example.test/phone")),
            Resolution::Answered
        );
        assert!(matches!(rx.await, Ok(Ok(Iq::Result { .. }))));
        assert_eq!(tracker.len(), 0);
    }

    #[tokio::test]
    async fn guard_removes_and_fail_all_fails() {
        let tracker = Arc::new(IqTracker::new("i".into()));
        let (guard, _rx) = tracker.register("i.0".into(), jid("example.test"), later());
        drop(guard);
        assert_eq!(tracker.len(), 0);
        let (_guard, rx) = tracker.register("i.1".into(), jid("example.test"), later());
        assert_eq!(tracker.fail_all(), 1);
        assert_eq!(rx.await, Ok(Err(IqError::LinkDown)));
    }

    #[tokio::test]
    async fn each_request_times_out_at_its_own_deadline_and_an_answered_one_never() {
        let tracker = Arc::new(IqTracker::new("i".into()));
        let expiring = tokio::spawn({
            let tracker = Arc::clone(&tracker);
            async move { tracker.expire_overdue().await }
        });
        let started = Instant::now();
        let from = jid("alice@example.test/phone");
        let ms = Duration::from_millis;
        // Registered latest-first, and one due earlier than the time the timer was set for.
        let (_slow_guard, slow) = tracker.register("i.0".into(), from.clone(), started + ms(300));
        let (_answered_guard, answered) =
            tracker.register("i.1".into(), from.clone(), started + ms(150));
        let (_quick_guard, quick) = tracker.register("i.2".into(), from.clone(), started + ms(60));
        assert_eq!(
            tracker.resolve(result("i.1", "alice@example.test/phone")),
            Resolution::Answered
        );
        assert!(matches!(answered.await, Ok(Ok(Iq::Result { .. }))));

        assert_eq!(quick.await, Ok(Err(IqError::Timeout)));
        let quick_at = started.elapsed();
        assert!(quick_at >= ms(60), "{quick_at:?}");
        assert_eq!(tracker.len(), 1, "only the slow request still waits");
        assert_eq!(slow.await, Ok(Err(IqError::Timeout)));
        assert!(started.elapsed() >= ms(300));
        assert_eq!(tracker.len(), 0);

        // After the table ran empty, a new request still gets its deadline.
        let again = Instant::now();
        let (_guard, next) = tracker.register("i.3".into(), from, again + ms(40));
        assert_eq!(next.await, Ok(Err(IqError::Timeout)));
        assert!(again.elapsed() >= ms(40));
        expiring.abort();
    }
}
