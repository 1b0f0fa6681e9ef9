//! The writer task of a session: drains the outbound queue, serialises stanzas in batches and
//! ends the stream with `</stream:stream>` when the queue closes.

use bytes::{Bytes, BytesMut};
use rxml::writer::{Encoder, SimpleNamespaces, TrackNamespace};
use rxml::{Item, Namespace, xml_ncname};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use xmpp_parsers::ns;
use xmpp_parsers::stanza::Stanza;
use xso::AsXml;

use crate::stream::short_answer;

/// Flush once a batch reaches this many bytes, even if more stanzas are queued.
const BATCH_BYTES: usize = 64 * 1024;

const STREAM_FOOTER: &[u8] = b"</stream:stream>";

/// Serialises stanzas as children of the open stream, so that they inherit the stream's
/// default namespace: no `xmlns` on `<iq>` or `<error>` (docs/protocol.md A.1: Prosody ignores errors
/// in another namespace).
pub(crate) struct StanzaEncoder {
    encoder: Encoder<SimpleNamespaces>,
}

impl StanzaEncoder {
    pub(crate) fn new() -> Self {
        let mut encoder = Encoder::new();
        let tracker = encoder.ns_tracker_mut();
        tracker.declare_fixed(Some(xml_ncname!("stream")), ns::STREAM.into());
        tracker.declare_fixed(None, ns::COMPONENT.into());
        // Enter the (already sent) stream element, so that stanzas are encoded as its children
        // rather than as a new document.
        let mut scratch = BytesMut::new();
        let opened = encoder
            .encode_into_bytes(
                Item::ElementHeadStart(Namespace::from(ns::STREAM), xml_ncname!("stream")),
                &mut scratch,
            )
            .and_then(|()| encoder.encode_into_bytes(Item::ElementHeadEnd, &mut scratch));
        debug_assert!(opened.is_ok(), "opening the stream element cannot fail");
        Self { encoder }
    }

    /// Appends `stanza` to `out`; on failure nothing is appended.
    pub(crate) fn encode(&mut self, stanza: &Stanza, out: &mut BytesMut) -> Result<(), String> {
        if short_answer::encode(stanza, out) {
            return Ok(());
        }
        self.encode_generic(stanza, out)
    }

    /// [`Self::encode`] through the generic serialiser, whatever the stanza.
    pub(crate) fn encode_generic(
        &mut self,
        stanza: &Stanza,
        out: &mut BytesMut,
    ) -> Result<(), String> {
        let start = out.len();
        let result = self.try_encode(stanza, out);
        if result.is_err() {
            out.truncate(start);
            // The encoder may be left inside the broken element: start over.
            *self = Self::new();
        }
        result
    }

    fn try_encode(&mut self, stanza: &Stanza, out: &mut BytesMut) -> Result<(), String> {
        for item in stanza.as_xml_iter().map_err(|e| e.to_string())? {
            let item = item.map_err(|e| e.to_string())?;
            self.encoder
                .encode_into_bytes(item.as_rxml_item(), out)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// One entry of the outbound queue.
// The queue carried bare stanzas before; boxing them would add an allocation to every one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A stanza to serialise.
    Stanza(Stanza),
    /// A stanza already written as bytes, exactly as the serialiser would write it; sent as is.
    Encoded(Bytes),
}

/// How the writer stopped.
#[derive(Debug)]
pub(crate) enum WriterEnd {
    /// The queue closed; everything was written and the stream footer sent.
    Closed,
    /// Told to stop at once (the link is dead).
    Stopped,
    /// Writing failed.
    Failed(std::io::Error),
}

/// Runs until the queue closes (then writes the footer), `stop` fires, or a write fails.
pub(crate) async fn run_writer(
    mut queue: mpsc::Receiver<Outbound>,
    mut socket: OwnedWriteHalf,
    stop: CancellationToken,
) -> WriterEnd {
    let mut encoder = StanzaEncoder::new();
    let mut batch = BytesMut::with_capacity(16 * 1024);
    loop {
        let first = tokio::select! {
            biased;
            () = stop.cancelled() => return WriterEnd::Stopped,
            next = queue.recv() => next,
        };
        let Some(first) = first else { break };
        put(&mut encoder, first, &mut batch);
        // Take whatever else is already queued into the same write.
        while batch.len() < BATCH_BYTES {
            match queue.try_recv() {
                Ok(next) => put(&mut encoder, next, &mut batch),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        tokio::select! {
            biased;
            () = stop.cancelled() => return WriterEnd::Stopped,
            written = socket.write_all(&batch) => {
                if let Err(e) = written {
                    return WriterEnd::Failed(e);
                }
            }
        }
        batch.clear();
    }
    // RFC 6120 §4.4: close our side of the stream.
    let closed = tokio::select! {
        biased;
        () = stop.cancelled() => return WriterEnd::Stopped,
        written = async {
            socket.write_all(STREAM_FOOTER).await?;
            socket.shutdown().await
        } => written,
    };
    match closed {
        Ok(()) => WriterEnd::Closed,
        Err(e) => WriterEnd::Failed(e),
    }
}

/// Appends one queue entry to the batch; a stanza that cannot be serialised is dropped.
fn put(encoder: &mut StanzaEncoder, entry: Outbound, out: &mut BytesMut) {
    match entry {
        Outbound::Encoded(bytes) => out.extend_from_slice(&bytes),
        Outbound::Stanza(stanza) => {
            if let Err(e) = encoder.encode(&stanza, out) {
                tracing::warn!(error = %e, "dropping an outgoing stanza that cannot be serialised");
                metrics::counter!("pushgate_xmpp_stanzas_unserialisable_total").increment(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_parsers::iq::Iq;
    use xmpp_parsers::jid::Jid;
    use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType};

    use crate::stream::short_answer::stanza_error;

    fn encode(stanza: Stanza) -> String {
        let mut out = BytesMut::new();
        StanzaEncoder::new().encode(&stanza, &mut out).unwrap();
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn error_is_written_in_the_default_namespace() {
        let iq = Iq::Error {
            from: Some(Jid::new("push.example.test").unwrap()),
            to: Some(Jid::new("example.test").unwrap()),
            id: "x1".into(),
            error: stanza_error(ErrorType::Cancel, DefinedCondition::ServiceUnavailable),
            payload: None,
        };
        let xml = encode(iq.into());
        assert!(xml.starts_with("<iq "), "{xml}");
        assert!(!xml.contains("jabber:client"), "{xml}");
        assert!(!xml.contains("jabber:component:accept"), "{xml}");
        assert!(xml.contains("<error type='cancel'>"), "{xml}");
        assert!(
            xml.contains("<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'"),
            "{xml}"
        );
    }

    #[test]
    fn several_stanzas_in_a_row() {
        let mut encoder = StanzaEncoder::new();
        let mut out = BytesMut::new();
        for id in ["a", "b"] {
            let iq = Iq::empty_result(Jid::new("example.test").unwrap(), id);
            encoder.encode(&iq.into(), &mut out).unwrap();
        }
        let xml = String::from_utf8(out.to_vec()).unwrap();
        assert_eq!(xml.matches("<iq ").count(), 2, "{xml}");
    }

    #[tokio::test]
    async fn encoded_entries_go_out_as_they_are_in_queue_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (client, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(address), listener.accept());
        let (_read, write) = client.unwrap().into_split();
        let (mut server, _) = accepted.unwrap();

        let result = |id: &str| {
            Outbound::Stanza(Iq::empty_result(Jid::new("example.test").unwrap(), id).into())
        };
        let encoded = Bytes::from_static(b"<iq type='set' to='example.test' id='e'><x/></iq>");
        let (queue, outbound) = mpsc::channel(8);
        for entry in [result("a"), Outbound::Encoded(encoded), result("b")] {
            queue.send(entry).await.unwrap();
        }
        drop(queue);
        let end = run_writer(outbound, write, CancellationToken::new()).await;
        assert!(matches!(end, WriterEnd::Closed), "{end:?}");

        let mut written = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut server, &mut written)
            .await
            .unwrap();
        assert_eq!(
            written,
            "<iq type='result' to='example.test' id='a'></iq>\
             <iq type='set' to='example.test' id='e'><x/></iq>\
             <iq type='result' to='example.test' id='b'></iq>\
             </stream:stream>"
        );
    }
}
