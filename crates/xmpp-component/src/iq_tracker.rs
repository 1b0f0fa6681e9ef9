//! Outgoing IQs waiting for their answer.
//!
//! Ids are `<instance>.<counter>` so that, once several instances share one component JID, an
//! answer can be routed to the instance that asked. An answer counts only if its id is known
//! AND its `from` equals the request's `to` (as Conversations checks): anyone else could guess
//! an id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::Jid;

use crate::error::IqError;

struct Pending {
    expected_from: Jid,
    answer: oneshot::Sender<Result<Iq, IqError>>,
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
    pending: Mutex<HashMap<String, Pending>>,
}

impl IqTracker {
    pub(crate) fn new(instance_id: String) -> Self {
        Self {
            instance_id,
            counter: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh id, `<instance>.<counter>`.
    pub(crate) fn next_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{}.{n}", self.instance_id)
    }

    /// Registers a request; the returned guard removes it again when dropped.
    pub(crate) fn register(
        self: &Arc<Self>,
        id: String,
        expected_from: Jid,
    ) -> (PendingGuard, oneshot::Receiver<Result<Iq, IqError>>) {
        let (answer, rx) = oneshot::channel();
        self.table().insert(
            id.clone(),
            Pending {
                expected_from,
                answer,
            },
        );
        let guard = PendingGuard {
            tracker: Arc::clone(self),
            id,
        };
        (guard, rx)
    }

    /// Hands an incoming result or error to whoever waits for it.
    pub(crate) fn resolve(&self, iq: Iq) -> Resolution {
        let mut table = self.table();
        let Some(pending) = table.get(iq.id()) else {
            return Resolution::Unsolicited;
        };
        if iq.from() != Some(&pending.expected_from) {
            return Resolution::WrongSender;
        }
        let Some(pending) = table.remove(iq.id()) else {
            return Resolution::Unsolicited;
        };
        drop(table);
        // The waiter may have given up in the meantime; then the answer is simply dropped.
        let _ = pending.answer.send(Ok(iq));
        Resolution::Answered
    }

    /// Fails every pending request at once with [`IqError::LinkDown`].
    pub(crate) fn fail_all(&self) -> usize {
        let drained: Vec<Pending> = self.table().drain().map(|(_, p)| p).collect();
        let n = drained.len();
        for pending in drained {
            let _ = pending.answer.send(Err(IqError::LinkDown));
        }
        n
    }

    /// Number of requests waiting.
    pub(crate) fn len(&self) -> usize {
        self.table().len()
    }
}

/// Removes a pending request when its waiter is done or gives up.
pub(crate) struct PendingGuard {
    tracker: Arc<IqTracker>,
    id: String,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.tracker.table().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
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

    #[tokio::test]
    async fn answer_needs_matching_id_and_sender() {
        let tracker = Arc::new(IqTracker::new("i".into()));
        let (_guard, mut rx) = tracker.register("i.0".into(), jid("alice@example.test/phone"));
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
        let (guard, _rx) = tracker.register("i.0".into(), jid("example.test"));
        drop(guard);
        assert_eq!(tracker.len(), 0);
        let (_guard, rx) = tracker.register("i.1".into(), jid("example.test"));
        assert_eq!(tracker.fail_all(), 1);
        assert_eq!(rx.await, Ok(Err(IqError::LinkDown)));
    }
}
