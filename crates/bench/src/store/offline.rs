//! The XMPP side of `store`, played on the fake server's end of the link: owners register
//! endpoints (docs/protocol.md A.3, C.5), then their server answers every push the way Prosody
//! answers an IQ to an offline resource (docs/protocol.md C.7), so pushgate keeps every message.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use pushgate_testkit::fake_xmpp_server::{FakeSession, FromComponent, escape};
use tokio::task::JoinHandle;
use xmpp_parsers::minidom::Element;

use super::{COMPONENT, DOMAIN, ENDPOINTS, OWNERS};
use crate::error::BenchError;
use crate::unifiedpush::{UNIFIED_PUSH, endpoint_path};

/// How long all registrations may take.
const REGISTRATION_LIMIT: Duration = Duration::from_secs(20);

/// The full JID of owner `owner`: the resource the endpoints push to.
fn owner_jid(owner: usize) -> String {
    format!("owner{owner}@{DOMAIN}/phone")
}

/// The registration of endpoint `index` (docs/protocol.md C.5) as the user's server routes it:
/// from the owner's full JID; distinct 32-byte application and instance ids.
fn register_stanza(index: usize) -> String {
    let application = STANDARD.encode([(index % 256) as u8; 32]);
    let mut instance = [0x5a_u8; 32];
    instance[..8].copy_from_slice(&(index as u64).to_be_bytes());
    let instance = STANDARD.encode(instance);
    format!(
        "<iq type='set' id='up{index}' from='{from}' to='{COMPONENT}'>\
<register xmlns='{UNIFIED_PUSH}' application='{application}' instance='{instance}'/></iq>",
        from = owner_jid(index % OWNERS),
    )
}

/// Registers [`ENDPOINTS`] endpoints, spread over [`OWNERS`] owners, all sent at once; returns
/// their `/push/{token}` paths.
pub(super) async fn register_endpoints(
    session: &mut FakeSession,
) -> Result<Vec<String>, BenchError> {
    for index in 0..ENDPOINTS {
        session.send_raw(register_stanza(index));
    }
    let deadline = Instant::now() + REGISTRATION_LIMIT;
    let mut paths: Vec<Option<String>> = vec![None; ENDPOINTS];
    let mut missing = ENDPOINTS;
    while missing > 0 {
        let wait = deadline.saturating_duration_since(Instant::now());
        let answer = match session.next_event(wait).await {
            Some(FromComponent::Stanza(element)) => element,
            Some(other) => {
                return Err(BenchError::Pushgate(format!(
                    "the link ended during registration: {other:?}"
                )));
            }
            None => {
                return Err(BenchError::Pushgate(format!(
                    "{missing} of {ENDPOINTS} registrations unanswered after {} s",
                    REGISTRATION_LIMIT.as_secs()
                )));
            }
        };
        let Some(index) = answer
            .attr("id")
            .and_then(|id| id.strip_prefix("up"))
            .and_then(|index| index.parse::<usize>().ok())
            .filter(|index| *index < ENDPOINTS)
        else {
            continue;
        };
        let Some(path) = endpoint_path(&answer) else {
            return Err(BenchError::Pushgate(format!(
                "registration answered without an endpoint: {}",
                String::from(&answer)
            )));
        };
        if paths[index].replace(path).is_none() {
            missing -= 1;
        }
    }
    Ok(paths.into_iter().flatten().collect())
}

/// Whether `stanza` is a push pushgate sends to a client (docs/protocol.md A.3).
fn is_push(stanza: &Element) -> bool {
    stanza.name() == "iq"
        && stanza.attr("type") == Some("set")
        && stanza.get_child("push", UNIFIED_PUSH).is_some()
}

/// Prosody's answer to an IQ from a component to an offline resource (docs/protocol.md C.7):
/// from the addressed JID, `service-unavailable` (cancel), the error unqualified.
fn offline_answer(push: &Element) -> String {
    format!(
        "<iq type='error' id='{id}' from='{from}' to='{to}'><error type='cancel'>\
<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        id = escape(push.attr("id").unwrap_or_default()),
        from = escape(push.attr("to").unwrap_or_default()),
        to = escape(push.attr("from").unwrap_or(COMPONENT)),
    )
}

/// The owners' server while they are offline: answers every push at once with
/// [`offline_answer`], on a task of its own.
pub(super) struct OfflineServer {
    answered: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<String>,
}

impl OfflineServer {
    /// Serves `session` until [`finish`](Self::finish) or until the link ends.
    pub fn start(mut session: FakeSession) -> Self {
        let answered = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counter, stopping) = (Arc::clone(&answered), Arc::clone(&stop));
        let task = tokio::spawn(async move {
            while !stopping.load(Ordering::Acquire) {
                match session.next_event(Duration::from_millis(200)).await {
                    Some(FromComponent::Stanza(stanza)) if is_push(&stanza) => {
                        session.send_raw(offline_answer(&stanza));
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(FromComponent::Stanza(_)) | None => {}
                    Some(ended) => return format!("the link ended: {ended:?}"),
                }
            }
            "stopped".to_owned()
        });
        Self {
            answered,
            stop,
            task,
        }
    }

    /// Pushes answered so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Fails if the link ended: pushgate would then keep messages without asking the client,
    /// and the numbers would measure something else.
    pub fn ensure_linked(&self) -> Result<(), BenchError> {
        if self.task.is_finished() {
            return Err(BenchError::Pushgate(
                "the component link ended during the run".to_owned(),
            ));
        }
        Ok(())
    }

    /// Stops answering; returns the pushes answered in all.
    pub async fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Release);
        let _ = (&mut self.task).await;
        self.answered()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Element {
        xml.replacen("<iq ", "<iq xmlns='jabber:component:accept' ", 1)
            .parse()
            .expect("well-formed")
    }

    #[test]
    fn registrations_come_from_owners_full_jids_with_distinct_ids() {
        let first = parse(&register_stanza(0));
        let again = parse(&register_stanza(OWNERS));
        assert_eq!(first.attr("from"), Some("owner0@example.test/phone"));
        assert_eq!(again.attr("from"), first.attr("from"));
        let register = |iq: &Element| {
            let register = iq.get_child("register", UNIFIED_PUSH).expect("register");
            (
                register.attr("application").map(str::to_owned),
                register.attr("instance").map(str::to_owned),
            )
        };
        assert_ne!(register(&first), register(&again));
        let (application, instance) = register(&first);
        for id in [application, instance] {
            let bytes = STANDARD.decode(id.expect("an id")).expect("base64");
            assert_eq!(bytes.len(), 32);
        }
    }

    #[test]
    fn a_push_is_answered_as_prosody_answers_for_an_offline_resource() {
        let push = parse(
            "<iq type='set' from='push.example.test' to='owner3@example.test/phone' id='1f0c.8'>\
<push xmlns='http://gultsch.de/xmpp/drafts/unified-push' application='A' instance='I'>aGk=</push></iq>",
        );
        assert!(is_push(&push));
        let answer = parse(&offline_answer(&push));
        assert_eq!(answer.attr("type"), Some("error"));
        assert_eq!(answer.attr("id"), Some("1f0c.8"));
        assert_eq!(answer.attr("from"), Some("owner3@example.test/phone"));
        assert_eq!(answer.attr("to"), Some(COMPONENT));
        let error = answer
            .get_child("error", "jabber:component:accept")
            .expect("an unqualified error");
        assert_eq!(error.attr("type"), Some("cancel"));
        assert!(
            error
                .get_child("service-unavailable", "urn:ietf:params:xml:ns:xmpp-stanzas")
                .is_some()
        );
        let ping = parse("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>");
        assert!(!is_push(&ping));
    }
}
