//! The HTTP load of the `unifiedpush` and `store` benchmarks: keep-alive HTTP/1.1 connections,
//! each posting one message after the other, as an application server's push sender does.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper::header::{CONTENT_ENCODING, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::error::BenchError;
use crate::latency::Latencies;

/// Requests are sent but not counted.
pub const WARMING_UP: u8 = 0;
/// Requests are counted.
pub const MEASURING: u8 = 1;
/// Connections finish their request and close.
pub const STOPPING: u8 = 2;

/// What the connections saw while [`MEASURING`].
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Time from sending a request to its whole response.
    pub latencies: Latencies,
    /// Responses by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Responses outside the measured window (warm-up, and the last request of each connection
    /// after it), by status code: with `statuses`, every answer the connections got.
    pub unmeasured: BTreeMap<u16, u64>,
}

impl LoadResult {
    fn merge(&mut self, other: LoadResult) {
        self.latencies.merge(other.latencies);
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        for (status, count) in other.unmeasured {
            *self.unmeasured.entry(status).or_default() += count;
        }
    }

    /// Answers with `status`, measured or not.
    pub fn all_with(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
            + self.unmeasured.get(&status).copied().unwrap_or(0)
    }
}

/// What every connection posts: the server, the endpoint paths (taken in turn) and the body.
#[derive(Clone)]
pub struct Load {
    /// pushgate's HTTP listener.
    pub address: SocketAddr,
    /// `/push/{token}` paths of registered endpoints.
    pub paths: Arc<Vec<String>>,
    /// The message body (an encrypted Web Push message would be opaque bytes like these).
    pub body: Bytes,
    /// The `TTL` header: seconds the sender wants an undelivered message kept.
    pub ttl: u32,
    /// Post these Matrix `notify` bodies (one per endpoint, taken in turn, each naming its
    /// endpoint as pushkey) to the Matrix gateway instead of `body` to the endpoints.
    pub matrix_notifies: Option<Arc<Vec<Bytes>>>,
}

/// The Matrix Push Gateway's path.
pub const MATRIX_NOTIFY_PATH: &str = "/_matrix/push/v1/notify";

/// Opens `connections` connections that post until `phase` is [`STOPPING`].
pub fn start(
    load: &Load,
    connections: usize,
    phase: &Arc<AtomicU8>,
) -> JoinSet<Result<LoadResult, BenchError>> {
    let mut workers = JoinSet::new();
    for index in 0..connections {
        workers.spawn(post_in_turn(
            load.clone(),
            index,
            connections,
            Arc::clone(phase),
        ));
    }
    workers
}

/// Waits for every connection and adds up what they saw.
pub async fn finish(
    mut workers: JoinSet<Result<LoadResult, BenchError>>,
) -> Result<LoadResult, BenchError> {
    let mut total = LoadResult::default();
    while let Some(joined) = workers.join_next().await {
        let result = joined.map_err(|error| {
            BenchError::Protocol(format!("an HTTP connection task failed: {error}"))
        })??;
        total.merge(result);
    }
    Ok(total)
}

fn http_error(error: impl std::fmt::Display) -> BenchError {
    BenchError::Protocol(format!("HTTP to pushgate: {error}"))
}

async fn post_in_turn(
    load: Load,
    index: usize,
    stride: usize,
    phase: Arc<AtomicU8>,
) -> Result<LoadResult, BenchError> {
    let stream = TcpStream::connect(load.address)
        .await
        .map_err(BenchError::io("connect to pushgate's HTTP listener"))?;
    stream
        .set_nodelay(true)
        .map_err(BenchError::io("set TCP_NODELAY"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http_error)?;
    let connection = tokio::spawn(connection);
    let host = load.address.to_string();
    let ttl = load.ttl.to_string();
    let mut result = LoadResult::default();
    let mut next = index;
    while phase.load(Ordering::Acquire) != STOPPING {
        let request = match &load.matrix_notifies {
            None => Request::post(load.paths[next % load.paths.len()].as_str())
                .header(HOST, host.as_str())
                .header("ttl", ttl.as_str())
                .header(CONTENT_ENCODING, "aes128gcm")
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(Full::new(load.body.clone())),
            Some(notifies) => Request::post(MATRIX_NOTIFY_PATH)
                .header(HOST, host.as_str())
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(notifies[next % notifies.len()].clone())),
        }
        .map_err(http_error)?;
        next += stride;
        let started = Instant::now();
        sender.ready().await.map_err(http_error)?;
        let response = sender.send_request(request).await.map_err(http_error)?;
        let status = response.status().as_u16();
        response.into_body().collect().await.map_err(http_error)?;
        if phase.load(Ordering::Acquire) == MEASURING {
            result.latencies.record(started.elapsed());
            *result.statuses.entry(status).or_default() += 1;
        } else {
            *result.unmeasured.entry(status).or_default() += 1;
        }
    }
    // Dropping the sender lets the connection close once it is idle.
    drop(sender);
    let _ = connection.await;
    Ok(result)
}
