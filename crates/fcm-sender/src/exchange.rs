//! One send as one HTTP/2 stream: the request head (prepared once, cloned per send), the body
//! in one DATA frame, the answer's status and `Retry-After`, and its body read with a cap while
//! giving the flow-control window back (RFC 9113 §5.2).

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::{Reason, RecvStream};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri, Version};

use crate::response_body::{Answer, BodyError, MAX_BODY_BYTES};

/// The `Content-Type` of every send.
const JSON_CONTENT_TYPE: HeaderValue = HeaderValue::from_static("application/json; charset=UTF-8");
/// The `User-Agent` of every send.
const PUSHGATE_USER_AGENT: HeaderValue =
    HeaderValue::from_static(concat!("pushgate/", env!("CARGO_PKG_VERSION")));
/// What the token endpoint's client sends too.
const ANY: HeaderValue = HeaderValue::from_static("*/*");

/// What every send's request head shares: the URI (so `:scheme`, `:authority`, `:path`);
/// cloning it only counts references.
#[derive(Debug)]
pub(crate) struct RequestHead {
    uri: Uri,
}

impl RequestHead {
    pub(crate) fn new(uri: Uri) -> Self {
        Self { uri }
    }

    /// The head of one POST with `authorization` and a body of `length` bytes.
    fn request(&self, authorization: HeaderValue, length: usize) -> Request<()> {
        let mut headers = HeaderMap::with_capacity(5);
        headers.insert(AUTHORIZATION, authorization);
        headers.insert(CONTENT_TYPE, JSON_CONTENT_TYPE);
        headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
        headers.insert(USER_AGENT, PUSHGATE_USER_AGENT);
        headers.insert(ACCEPT, ANY);
        let mut request = Request::new(());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = Version::HTTP_2;
        *request.headers_mut() = headers;
        request
    }
}

/// Why a stream brought no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamFailure {
    /// A short, token-free description.
    pub(crate) reason: &'static str,
    /// The server cannot have acted on the request (it never went out, or the server refused
    /// the stream, RFC 9113 §8.7), so sending it again on a new connection is safe.
    pub(crate) unprocessed: bool,
    /// The connection is ending or has ended: new sends need a new one.
    pub(crate) connection_gone: bool,
}

impl StreamFailure {
    /// The connection was unusable before the request went out.
    fn unsent(error: &h2::Error) -> Self {
        tracing::debug!(%error, "an HTTP/2 connection to FCM is no longer usable");
        Self {
            reason: "connection failed",
            unprocessed: true,
            connection_gone: true,
        }
    }

    /// The stream failed after the request went out, before the answer's head came.
    fn before_answer(error: &h2::Error) -> Self {
        tracing::debug!(%error, "an HTTP/2 stream to FCM failed");
        // A stream above a GOAWAY's last stream ID was not processed (RFC 9113 §6.8). h2 also
        // gives that error to streams cut off later by the same connection's end; resending
        // one of those at worst wakes the device twice.
        let refused = error.reason() == Some(Reason::REFUSED_STREAM)
            || (error.is_go_away() && error.is_remote());
        Self {
            reason: "connection failed",
            unprocessed: refused,
            connection_gone: error.is_io() || error.is_go_away(),
        }
    }
}

/// Sends one POST on the connection of `send` and reads the answer.
pub(crate) async fn exchange(
    send: SendRequest<Bytes>,
    head: &RequestHead,
    authorization: &HeaderValue,
    body: &Bytes,
) -> Result<Answer, StreamFailure> {
    // Blocks and helpers keep what is borrowed here out of the future's later states.
    let response = {
        let mut send = send;
        std::future::poll_fn(|cx| send.poll_ready(cx))
            .await
            .map_err(|e| StreamFailure::unsent(&e))?;
        // The stream lives on in the response future; the handle is let go at once.
        open_stream(&mut send, head, authorization, body)?
    };
    let response = response
        .await
        .map_err(|e| StreamFailure::before_answer(&e))?;
    let (status, retry_after, declared, recv) = answer_head(response);
    let body = read_answer(recv, status, declared).await;
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// The status, `Retry-After` and `Content-Length` of an answer, and its body stream.
fn answer_head(
    response: Response<RecvStream>,
) -> (u16, Option<HeaderValue>, Option<u64>, RecvStream) {
    let status = response.status().as_u16();
    let retry_after = response.headers().get(RETRY_AFTER).cloned();
    let declared = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    (status, retry_after, declared, response.into_body())
}

/// Sends the request head and the body on a new stream.
fn open_stream(
    send: &mut SendRequest<Bytes>,
    head: &RequestHead,
    authorization: &HeaderValue,
    body: &Bytes,
) -> Result<ResponseFuture, StreamFailure> {
    let request = head.request(authorization.clone(), body.len());
    let (response, mut stream) = send
        .send_request(request, false)
        .map_err(|e| StreamFailure::unsent(&e))?;
    // Sent without reserving capacity: h2 holds the few hundred bytes until the window allows.
    stream
        .send_data(body.clone(), true)
        .map_err(|e| StreamFailure::before_answer(&e))?;
    Ok(response)
}

/// The body of an answer with `status`: nothing kept for a success, the capped bytes
/// otherwise.
async fn read_answer(
    mut recv: RecvStream,
    status: u16,
    declared: Option<u64>,
) -> Result<Vec<u8>, BodyError> {
    if (200..300).contains(&status) {
        drain(&mut recv).await.map(|()| Vec::new())
    } else if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        Err(BodyError::TooLarge)
    } else {
        read_capped(&mut recv, declared).await
    }
}

/// The whole body, refusing more than [`MAX_BODY_BYTES`].
async fn read_capped(recv: &mut RecvStream, declared: Option<u64>) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::with_capacity(declared.map_or(0, |length| length as usize));
    while let Some(chunk) = next_chunk(recv).await? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads the body to its end without keeping it, so the stream ends cleanly rather than with
/// a reset; stops at [`MAX_BODY_BYTES`].
async fn drain(recv: &mut RecvStream) -> Result<(), BodyError> {
    let mut length = 0;
    while let Some(chunk) = next_chunk(recv).await? {
        length += chunk.len();
        if length > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge);
        }
    }
    Ok(())
}

/// The next piece of the body, its window given back at once.
async fn next_chunk(recv: &mut RecvStream) -> Result<Option<Bytes>, BodyError> {
    match recv.data().await {
        None => Ok(None),
        Some(Ok(chunk)) => {
            // Fails only once the stream is gone, which the next read reports.
            let _ = recv.flow_control().release_capacity(chunk.len());
            Ok(Some(chunk))
        }
        // A server may reset with NO_ERROR after a complete answer to say it wants no more of
        // the request (RFC 9113 §8.1); the answer stands.
        Some(Err(error)) if error.reason() == Some(Reason::NO_ERROR) => Ok(None),
        Some(Err(error)) => {
            tracing::debug!(%error, "an HTTP/2 stream from FCM broke off");
            Err(BodyError::Transport(
                "connection failed while reading the answer",
            ))
        }
    }
}
