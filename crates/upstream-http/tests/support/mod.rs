//! Servers on 127.0.0.1:0 for the tests: HTTP/1.1 only, h2c, TLS with a chosen ALPN offer,
//! and an HTTP CONNECT proxy; each records what it saw.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use pushgate_upstream_http::{TlsRoots, UpstreamSettings};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use url::Url;

/// What the client does first on a plain connection that a server may not like.
const H2_PREFACE_START: &[u8] = b"PRI";

/// What a plain server does with the HTTP/2 preface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnPreface {
    /// Speaks HTTP/2 (h2c).
    Http2,
    /// Hands it to hyper's HTTP/1.1 server, as an HTTP/1.1-only server would.
    Http1Server,
    /// Closes the connection without a word.
    Close,
    /// Answers `HTTP/1.1 400` and closes, as nginx does.
    Answer400,
}

/// What a server saw.
#[derive(Default)]
pub struct Seen {
    pub versions: Mutex<Vec<Version>>,
    pub connections: AtomicUsize,
}

impl Seen {
    pub fn versions(&self) -> Vec<Version> {
        self.versions.lock().expect("versions").clone()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

/// A running server; stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub fn http_url(&self) -> Url {
        Url::parse(&format!("http://{}", self.addr)).expect("url")
    }

    pub fn https_url(&self) -> Url {
        Url::parse(&format!("https://{}", self.addr)).expect("url")
    }
}

/// The answers, by path: `/big` 100 kB, `/slow` after 2 s, `/retry-seconds` 503 with
/// `Retry-After: 7`, `/retry-date` 429 with a date 30 s ahead, `/echo` the request body;
/// anything else 200 `ok`.
async fn answer(
    request: Request<Incoming>,
    seen: Arc<Seen>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    seen.versions
        .lock()
        .expect("versions")
        .push(request.version());
    let path = request.uri().path().to_owned();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let response = match path.as_str() {
        "/big" => Response::new(Full::new(Bytes::from(vec![b'x'; 100 * 1024]))),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Response::new(Full::new(Bytes::from_static(b"late")))
        }
        "/retry-seconds" => Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .header("retry-after", "7")
            .body(Full::new(Bytes::new()))
            .expect("response"),
        "/retry-date" => Response::builder()
            .status(StatusCode::TOO_MANY_REQUESTS)
            .header(
                "retry-after",
                httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30)),
            )
            .body(Full::new(Bytes::new()))
            .expect("response"),
        "/echo" => Response::new(Full::new(body)),
        _ => Response::new(Full::new(Bytes::from_static(b"ok"))),
    };
    Ok(response)
}

async fn serve_http1<T>(io: T, seen: Arc<Seen>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| answer(request, Arc::clone(&seen)));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

async fn serve_http2<T>(io: T, seen: Arc<Seen>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| answer(request, Arc::clone(&seen)));
    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// Whether the client's first bytes are the HTTP/2 preface.
async fn starts_with_preface(stream: &TcpStream) -> bool {
    let mut first = [0u8; 3];
    loop {
        match stream.peek(&mut first).await {
            Ok(n) if n >= first.len() => return first == H2_PREFACE_START,
            Ok(0) | Err(_) => return false,
            Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
}

/// A plain server: HTTP/1.1 for HTTP/1.1 requests, `on_preface` for the HTTP/2 preface.
pub async fn plain(on_preface: OnPreface) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Seen::default());
    let task = tokio::spawn({
        let seen = Arc::clone(&seen);
        async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                seen.connections.fetch_add(1, Ordering::Relaxed);
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    if !starts_with_preface(&stream).await {
                        return serve_http1(stream, seen).await;
                    }
                    match on_preface {
                        OnPreface::Http2 => serve_http2(stream, seen).await,
                        OnPreface::Http1Server => serve_http1(stream, seen).await,
                        OnPreface::Close => drop(stream),
                        OnPreface::Answer400 => {
                            let mut preface = [0u8; 24];
                            let _ = stream.read_exact(&mut preface).await;
                            let _ = stream
                                .write_all(
                                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\
                                      Connection: close\r\n\r\n",
                                )
                                .await;
                            let _ = stream.shutdown().await;
                        }
                    }
                });
            }
        }
    });
    Server { addr, seen, task }
}

fn test_certificate_chain() -> Vec<CertificateDer<'static>> {
    let pem = include_bytes!("../data/server.pem");
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .expect("certificate")
}

/// The test CA, the only root the client trusts.
pub fn test_roots() -> TlsRoots {
    let pem = include_bytes!("../data/ca.pem");
    TlsRoots::Only(vec![CertificateDer::from_pem_slice(pem).expect("CA")])
}

/// A TLS server offering `alpn` (e.g. `["http/1.1"]`), speaking what ALPN chose.
pub async fn tls(alpn: &[&[u8]]) -> Server {
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("../data/server-key.pem")).expect("key");
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(test_certificate_chain(), key)
        .expect("server config");
    config.alpn_protocols = alpn.iter().map(|name| name.to_vec()).collect();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Seen::default());
    let task = tokio::spawn({
        let seen = Arc::clone(&seen);
        async move {
            while let Ok((stream, _)) = listener.accept().await {
                seen.connections.fetch_add(1, Ordering::Relaxed);
                let (seen, acceptor) = (Arc::clone(&seen), acceptor.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                        serve_http2(stream, seen).await;
                    } else {
                        serve_http1(stream, seen).await;
                    }
                });
            }
        }
    });
    Server { addr, seen, task }
}

/// Each CONNECT's request line and `Proxy-Authorization`.
type Heads = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// An HTTP CONNECT proxy; records each request head's first line and its
/// `Proxy-Authorization`.
pub struct ConnectProxy {
    pub addr: SocketAddr,
    pub requests: Heads,
    task: JoinHandle<()>,
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConnectProxy {
    /// Tunnels every CONNECT, or answers `refuse` (e.g. 403) to each.
    pub async fn start(refuse: Option<u16>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let requests = Arc::clone(&requests);
            async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    let requests = Arc::clone(&requests);
                    tokio::spawn(tunnel(inbound, requests, refuse));
                }
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        self.requests.lock().expect("requests").clone()
    }
}

async fn tunnel(mut inbound: TcpStream, requests: Heads, refuse: Option<u16>) {
    // The client sends nothing more before the answer, so reading past the head cannot
    // swallow tunnelled bytes.
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.ends_with(b"\r\n\r\n") {
        match inbound.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default().to_owned();
    let authorization = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, value)| value.trim().to_owned());
    requests
        .lock()
        .expect("requests")
        .push((first.clone(), authorization));
    if let Some(status) = refuse {
        let _ = inbound
            .write_all(format!("HTTP/1.1 {status} No\r\nContent-Length: 0\r\n\r\n").as_bytes())
            .await;
        return;
    }
    let Some(target) = first
        .strip_prefix("CONNECT ")
        .and_then(|rest| rest.split(' ').next())
    else {
        return;
    };
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        let _ = inbound.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return;
    };
    if inbound
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
}

/// Settings for `url` that trust the test CA and answer within 3 s.
pub fn settings(url: Url) -> UpstreamSettings {
    UpstreamSettings {
        tls_roots: test_roots(),
        request_timeout: Some(Duration::from_secs(3)),
        connect_timeout: Duration::from_secs(2),
        ..UpstreamSettings::new(url)
    }
}

/// A GET of `path`.
pub fn get(path: &str) -> Request<Bytes> {
    Request::get(path).body(Bytes::new()).expect("request")
}
