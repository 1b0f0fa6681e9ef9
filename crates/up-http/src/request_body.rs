//! A request body read from a client that may stop sending it.
//!
//! A client that stops partway through its body is the client's fault, not the server's: the
//! answer is 408 Request Timeout (RFC 9110 §15.5.9), and the connection is closed, since the
//! rest of that body may still come and nothing could tell it from a next request. Two
//! things end the wait: no body byte for the body read timeout while the handler waits for
//! one ([`TimedBody`]), or the request deadline passing while the handler waits for one
//! ([`BodyReadState::waiting_on_client`]). A deadline that passes while the handler is busy
//! with a body it has is the server's fault and stays 503.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::errors::json_error;
use crate::strict_http1::close_after;

/// Why a [`TimedBody`] could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestBodyError {
    /// Reading from the connection failed.
    #[error(transparent)]
    Read(#[from] hyper::Error),
    /// The client sent no body byte for this long while the handler waited for one.
    #[error("no request body bytes arrived for {0:?}")]
    Stalled(Duration),
}

const READING: u8 = 0;
const WAITING_ON_CLIENT: u8 = 1;
const STALLED: u8 = 2;

/// How the reading of one request body stands, shared between its [`TimedBody`] and the
/// connection that answers the request.
#[derive(Clone, Debug, Default)]
pub(crate) struct BodyReadState(Arc<AtomicU8>);

impl BodyReadState {
    /// Whether the handler's last read of the body found no bytes and waits for the client.
    pub(crate) fn waiting_on_client(&self) -> bool {
        self.0.load(Ordering::Acquire) == WAITING_ON_CLIENT
    }

    /// Whether the body was given up on, the client having sent nothing for the body read
    /// timeout.
    pub(crate) fn stalled(&self) -> bool {
        self.0.load(Ordering::Acquire) == STALLED
    }

    fn set(&self, state: u8) {
        self.0.store(state, Ordering::Release);
    }
}

/// A request body that fails with [`RequestBodyError::Stalled`] when no byte of it arrives for
/// `timeout` while it is being read; the time the handler spends between reads does not
/// count (as nginx's `client_body_timeout`).
pub(crate) struct TimedBody<B> {
    inner: B,
    timeout: Duration,
    /// Allocated at the first read that has to wait: most bodies arrive with their head.
    stall: Option<Pin<Box<Sleep>>>,
    /// Whether `stall` runs for the current wait.
    armed: bool,
    state: BodyReadState,
}

impl<B> TimedBody<B> {
    /// `inner`, given up on after `timeout` without a byte; `state` tells how it stands.
    pub(crate) fn new(inner: B, timeout: Duration, state: BodyReadState) -> Self {
        Self {
            inner,
            timeout,
            stall: None,
            armed: false,
            state,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Error = hyper::Error> + Unpin,
{
    type Data = B::Data;
    type Error = RequestBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.state.stalled() {
            return Poll::Ready(Some(Err(RequestBodyError::Stalled(this.timeout))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.armed = false;
                this.state.set(READING);
                return Poll::Ready(frame.map(|frame| frame.map_err(RequestBodyError::from)));
            }
            Poll::Pending => {}
        }
        this.state.set(WAITING_ON_CLIENT);
        let deadline = Instant::now() + this.timeout;
        let stall = match (&mut this.stall, this.armed) {
            (Some(stall), true) => stall,
            (Some(stall), false) => {
                stall.as_mut().reset(deadline);
                stall
            }
            (stall @ None, _) => stall.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        this.armed = true;
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.state.set(STALLED);
                Poll::Ready(Some(Err(RequestBodyError::Stalled(this.timeout))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// 408 with a JSON error and `Connection: close`: the request did not arrive in time (RFC
/// 9110 §15.5.9 asks for the close).
pub(crate) fn request_timeout() -> Response {
    let mut response = json_error(
        StatusCode::REQUEST_TIMEOUT,
        "the request did not arrive in time",
    );
    close_after(&mut response);
    response
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::body::Bytes;
    use http_body_util::{BodyExt as _, StreamBody};

    use super::*;

    #[tokio::test]
    async fn a_stall_fails_the_body_but_time_between_reads_does_not_count() {
        let timeout = Duration::from_millis(200);
        let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(4);
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            let bytes = receiver.recv().await?;
            Some((Ok::<_, Infallible>(Frame::data(bytes)), receiver))
        });
        let state = BodyReadState::default();
        let mut body = TimedBody::new(
            MapErr(StreamBody::new(Box::pin(stream))),
            timeout,
            state.clone(),
        );
        sender.send(Bytes::from_static(b"ab")).await.expect("send");
        assert!(body.frame().await.is_some());
        assert!(!state.waiting_on_client());
        // The handler is busy for longer than the timeout: not the client's fault.
        tokio::time::sleep(timeout * 2).await;
        sender.send(Bytes::from_static(b"cd")).await.expect("send");
        assert!(body.frame().await.is_some_and(|frame| frame.is_ok()));
        let started = Instant::now();
        let waiting = tokio::spawn(async move { body.frame().await });
        tokio::time::sleep(timeout / 2).await;
        assert!(state.waiting_on_client());
        let result = waiting.await.expect("task");
        assert!(started.elapsed() >= timeout);
        assert!(matches!(
            result,
            Some(Err(RequestBodyError::Stalled(stalled))) if stalled == timeout
        ));
        assert!(state.stalled());
        drop(sender);
    }

    /// A test body with hyper's error type, as `Incoming` has.
    struct MapErr<B>(B);

    impl<B: Body<Error = Infallible> + Unpin> Body for MapErr<B> {
        type Data = B::Data;
        type Error = hyper::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            Pin::new(&mut self.get_mut().0)
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(|never| match never {})))
        }
    }
}
