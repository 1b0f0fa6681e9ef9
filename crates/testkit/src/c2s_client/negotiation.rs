//! Stream negotiation of the test client: plain TCP, SASL PLAIN, resource binding and the
//! optional legacy session (RFC 6120 §6 and §7, RFC 3921 §3).

use std::borrow::Cow;
use std::net::Ipv4Addr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio_xmpp::minidom::Element;
use tokio_xmpp::xmlstream::{
    PendingFeaturesRecv, ReadError, StreamHeader, Timeouts, XmlStream, initiate_stream,
};

use super::stanza::{NS_CLIENT, element, error_condition, set_attr, stanza_type};
use super::{C2sConfig, C2sError};

const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";

/// An open client XML stream carrying plain elements.
pub(super) type ClientStream = XmlStream<BufStream<TcpStream>, Element>;

/// Connects, authenticates and binds; returns the stream and the bound full JID.
pub(super) async fn negotiate(config: &C2sConfig) -> Result<(ClientStream, String), C2sError> {
    let tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, config.port))
        .await
        .map_err(C2sError::Connect)?;
    // Loopback peers answer at once; the soft timeout only matters for idle streams, which
    // the connection task tolerates.
    let timeouts = Timeouts {
        read_timeout: config.timeout * 60,
        response_timeout: config.timeout * 60,
    };
    let pending = initiate_stream(BufStream::new(tcp), NS_CLIENT, header(config), timeouts)
        .await
        .map_err(C2sError::Io)?;
    let (mechanisms, mut stream) = features(pending).await?;
    if !mechanisms.iter().any(|m| m == "PLAIN") {
        return Err(C2sError::Negotiation(format!(
            "server offers no SASL PLAIN over plain TCP (offers {mechanisms:?})"
        )));
    }

    // RFC 6120 §6.4.2 with RFC 4616: authzid empty, authcid, password.
    let mut auth = element("auth", NS_SASL, &[("mechanism", "PLAIN")]);
    auth.append_text(STANDARD.encode(format!("\0{}\0{}", config.user, config.password)));
    stream.send(&auth).await.map_err(C2sError::Io)?;
    let answer = next_element(&mut stream).await?;
    if answer.is("failure", NS_SASL) {
        let condition = answer
            .children()
            .find(|c| c.name() != "text")
            .map_or_else(|| "unknown".to_owned(), |c| c.name().to_owned());
        return Err(C2sError::AuthFailed(condition));
    }
    if !answer.is("success", NS_SASL) {
        return Err(C2sError::Negotiation(format!(
            "expected SASL success, got <{}/>",
            answer.name()
        )));
    }

    // RFC 6120 §6.4.6: after SASL success the initiator restarts the stream.
    let pending = stream
        .initiate_reset()
        .send_header(header(config))
        .await
        .map_err(C2sError::Io)?;
    let (_, mut stream) = features(pending).await?;

    // RFC 6120 §7.6: resource binding.
    let mut bind = Element::bare("bind", NS_BIND);
    let mut resource = Element::bare("resource", NS_BIND);
    resource.append_text(config.resource.clone());
    bind.append_child(resource);
    let mut iq = element("iq", NS_CLIENT, &[("type", "set"), ("id", "bind-1")]);
    iq.append_child(bind);
    let answer = request(&mut stream, iq).await?;
    let jid = answer
        .get_child("bind", NS_BIND)
        .and_then(|b| b.get_child("jid", NS_BIND))
        .map(Element::text)
        .ok_or_else(|| C2sError::Negotiation("bind result carries no <jid/>".to_owned()))?;

    if config.establish_session {
        // RFC 3921 §3: servers that still list it may expect it before routing.
        let mut iq = element("iq", NS_CLIENT, &[("type", "set"), ("id", "session-1")]);
        iq.append_child(Element::bare("session", NS_SESSION));
        request(&mut stream, iq).await?;
    }
    Ok((stream, jid))
}

fn header(config: &C2sConfig) -> StreamHeader<'static> {
    StreamHeader {
        from: None,
        to: Some(Cow::Owned(config.domain.clone())),
        id: None,
    }
}

/// Reads the stream features; returns the SASL mechanisms offered.
async fn features(
    pending: PendingFeaturesRecv<BufStream<TcpStream>>,
) -> Result<(Vec<String>, ClientStream), C2sError> {
    let (features, stream) = pending
        .recv_features::<Element>()
        .await
        .map_err(|e| C2sError::Negotiation(format!("stream features: {e}")))?;
    Ok((features.sasl_mechanisms.into_iter().collect(), stream))
}

/// Sends an IQ during negotiation and waits for its result (nothing else arrives yet).
async fn request(stream: &mut ClientStream, iq: Element) -> Result<Element, C2sError> {
    let id = iq.attr("id").unwrap_or_default().to_owned();
    stream.send(&iq).await.map_err(C2sError::Io)?;
    loop {
        let answer = next_element(stream).await?;
        if answer.name() != "iq" || answer.attr("id") != Some(id.as_str()) {
            continue;
        }
        if stanza_type(&answer) == "result" {
            return Ok(answer);
        }
        return Err(C2sError::Negotiation(format!(
            "IQ {id} failed: {}",
            error_condition(&answer).unwrap_or_else(|| "no condition".to_owned())
        )));
    }
}

/// The next element, skipping soft timeouts.
pub(super) async fn next_element(stream: &mut ClientStream) -> Result<Element, C2sError> {
    loop {
        match stream.next().await {
            Some(Ok(element)) => return Ok(element),
            Some(Err(ReadError::SoftTimeout)) => continue,
            Some(Err(ReadError::ParseError(e))) => {
                return Err(C2sError::Negotiation(format!("unparsable element: {e}")));
            }
            Some(Err(ReadError::HardError(e))) => return Err(C2sError::Io(e)),
            Some(Err(ReadError::StreamFooterReceived)) | None => return Err(C2sError::Closed),
        }
    }
}

/// Gives an element an `id` unless it has one.
pub(super) fn ensure_id(stanza: &mut Element, fresh: impl FnOnce() -> String) -> String {
    if let Some(id) = stanza.attr("id") {
        return id.to_owned();
    }
    let id = fresh();
    set_attr(stanza, "id", &id);
    id
}
