//! One request as one HTTP/2 stream: the head, the body in one DATA frame, the answer's head,
//! and its body read with a cap while giving the flow-control window back (RFC 9113 §5.2).

use bytes::{Bytes, BytesMut};
use h2::client::{ResponseFuture, SendRequest};
use h2::{Reason, RecvStream};
use http::header::CONTENT_LENGTH;
use http::{Request, Version};

use crate::error::UpstreamError;
use crate::request::UpstreamRequest;
use crate::response::UpstreamResponse;
use crate::retry_after::retry_after;

/// Why a stream brought no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamFailure {
    /// The server cannot have acted on the request (it never went out, or the server refused
    /// the stream, RFC 9113 §8.7), so sending it again on a new connection is safe.
    pub(crate) unprocessed: bool,
    /// The connection is ending or has ended: new requests need a new one.
    pub(crate) connection_gone: bool,
}

/// How an exchange failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Before the answer's head: perhaps worth sending again.
    Stream(StreamFailure),
    /// For the caller.
    Final(UpstreamError),
}

impl StreamFailure {
    /// The connection was unusable before the request went out.
    fn unsent(error: &h2::Error) -> Failure {
        tracing::debug!(%error, "an HTTP/2 connection is no longer usable");
        Failure::Stream(Self {
            unprocessed: true,
            connection_gone: true,
        })
    }

    /// The stream failed after the request went out, before the answer's head came.
    fn before_answer(error: &h2::Error) -> Failure {
        tracing::debug!(%error, "an HTTP/2 stream failed");
        // A stream above a GOAWAY's last stream ID was not processed (RFC 9113 §6.8). h2 also
        // gives that error to streams cut off later by the same connection's end; resending
        // one of those at worst delivers the request twice.
        let refused = error.reason() == Some(Reason::REFUSED_STREAM)
            || (error.is_go_away() && error.is_remote());
        Failure::Stream(Self {
            unprocessed: refused,
            connection_gone: error.is_io() || error.is_go_away(),
        })
    }
}

/// Sends one request on the connection of `send` and reads the answer, at most `max_body`
/// bytes of its body.
pub(crate) async fn exchange(
    send: SendRequest<Bytes>,
    request: &UpstreamRequest,
    max_body: usize,
) -> Result<UpstreamResponse, Failure> {
    // Blocks and helpers keep what is borrowed here out of the future's later states.
    let response = {
        let mut send = send;
        std::future::poll_fn(|cx| send.poll_ready(cx))
            .await
            .map_err(|e| StreamFailure::unsent(&e))?;
        // The stream lives on in the response future; the handle is let go at once.
        open_stream(&mut send, request)?
    };
    let mut response = response
        .await
        .map_err(|e| StreamFailure::before_answer(&e))?;
    let read = read_body(&mut response, max_body).await;
    let (parts, _) = response.into_parts();
    answer(parts, read, max_body)
}

/// The answer of a head and what reading its body brought.
fn answer(
    parts: http::response::Parts,
    body: Result<Bytes, BodyFailure>,
    max_body: usize,
) -> Result<UpstreamResponse, Failure> {
    let status = parts.status;
    let retry_after = retry_after(&parts.headers);
    match body {
        Ok(body) => Ok(UpstreamResponse {
            status,
            version: Version::HTTP_2,
            headers: parts.headers,
            body,
            retry_after,
        }),
        Err(BodyFailure::TooLarge) => Err(Failure::Final(UpstreamError::BodyTooLarge {
            status,
            retry_after,
            limit: max_body,
        })),
        Err(BodyFailure::Broken) => Err(Failure::Final(UpstreamError::BodyBroken {
            status,
            retry_after,
        })),
    }
}

/// Sends the request head and the body on a new stream.
fn open_stream(
    send: &mut SendRequest<Bytes>,
    request: &UpstreamRequest,
) -> Result<ResponseFuture, Failure> {
    let body = &request.body;
    let mut head = Request::new(());
    *head.method_mut() = request.head.method.clone();
    *head.uri_mut() = request.wire_uri();
    *head.version_mut() = Version::HTTP_2;
    *head.headers_mut() = request.wire_headers();
    let (response, mut stream) = send
        .send_request(head, body.is_empty())
        .map_err(|e| StreamFailure::unsent(&e))?;
    if !body.is_empty() {
        // Sent without reserving capacity: h2 holds the bytes until the window allows.
        stream
            .send_data(body.clone(), true)
            .map_err(|e| StreamFailure::before_answer(&e))?;
    }
    Ok(response)
}

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyFailure {
    TooLarge,
    Broken,
}

/// The whole body, refusing more than `max_body` bytes. One DATA frame, the usual case, is
/// kept as it came, without a copy.
async fn read_body(
    response: &mut http::Response<RecvStream>,
    max_body: usize,
) -> Result<Bytes, BodyFailure> {
    let declared = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max_body as u64) {
        return Err(BodyFailure::TooLarge);
    }
    let recv = response.body_mut();
    let mut collected = Collected::Empty;
    let mut length = 0;
    while let Some(chunk) = next_chunk(recv).await? {
        length += chunk.len();
        if length > max_body {
            return Err(BodyFailure::TooLarge);
        }
        collected = match collected {
            Collected::Empty => Collected::One(chunk),
            Collected::One(first) => {
                let mut joined = BytesMut::with_capacity(length);
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&chunk);
                Collected::Many(joined)
            }
            Collected::Many(mut joined) => {
                joined.extend_from_slice(&chunk);
                Collected::Many(joined)
            }
        };
    }
    Ok(match collected {
        Collected::Empty => Bytes::new(),
        Collected::One(first) => first,
        Collected::Many(joined) => joined.freeze(),
    })
}

/// A body read so far.
enum Collected {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

/// The next piece of the body, its window given back at once.
async fn next_chunk(recv: &mut RecvStream) -> Result<Option<Bytes>, BodyFailure> {
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
            tracing::debug!(%error, "an HTTP/2 stream broke off");
            Err(BodyFailure::Broken)
        }
    }
}
