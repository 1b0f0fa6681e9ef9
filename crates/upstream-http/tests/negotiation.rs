//! Which HTTP version is spoken: h2c with prior knowledge for `http`, falling back to
//! HTTP/1.1 without a setting; ALPN for `https`.

mod support;

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use pushgate_upstream_http::{ConnectFailure, Upstream, UpstreamError, Versions};

use support::{OnPreface, get, plain, settings, tls};

#[tokio::test]
async fn an_h2c_server_gets_http2_and_requests_share_one_connection() {
    let server = plain(OnPreface::Http2).await;
    let upstream = Upstream::new(settings(server.http_url()), "test").expect("upstream");
    let answers = futures::future::join_all((0..10).map(|_| upstream.send(get("/")))).await;
    for answer in answers {
        let answer = answer.expect("answer");
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.version, Version::HTTP_2);
        assert_eq!(answer.body, "ok");
    }
    assert_eq!(server.seen.versions(), vec![Version::HTTP_2; 10]);
    assert_eq!(server.seen.connections(), 1);
    assert!(!upstream.speaks_http1_only());
}

#[tokio::test]
async fn an_http1_only_server_on_http_gets_http1_with_kept_connections() {
    // hyper's HTTP/1.1 server, given the preface, refuses it as HTTP/1.1 servers do.
    let server = plain(OnPreface::Http1Server).await;
    let upstream = Upstream::new(settings(server.http_url()), "test").expect("upstream");
    let request = Request::post("/echo")
        .body(Bytes::from_static(b"{\"wake\":1}"))
        .expect("request");
    let answer = upstream.send(request).await.expect("answer");
    assert_eq!(answer.version, Version::HTTP_11);
    assert_eq!(answer.body, "{\"wake\":1}");
    assert!(upstream.speaks_http1_only());
    for _ in 0..3 {
        assert_eq!(upstream.send(get("/")).await.expect("answer").body, "ok");
    }
    assert_eq!(server.seen.versions(), vec![Version::HTTP_11; 4]);
    assert_eq!(
        server.seen.connections(),
        2,
        "the refused preface, then one kept HTTP/1.1 connection"
    );
}

#[tokio::test]
async fn a_server_closing_during_the_preface_gets_http1() {
    let server = plain(OnPreface::Close).await;
    let upstream = Upstream::new(settings(server.http_url()), "test").expect("upstream");
    let answer = upstream.send(get("/")).await.expect("answer");
    assert_eq!(answer.version, Version::HTTP_11);
    assert_eq!(server.seen.versions(), vec![Version::HTTP_11]);
}

#[tokio::test]
async fn a_server_answering_the_preface_in_http1_gets_http1() {
    let server = plain(OnPreface::Answer400).await;
    let upstream = Upstream::new(settings(server.http_url()), "test").expect("upstream");
    let answer = upstream.send(get("/")).await.expect("answer");
    assert_eq!(answer.version, Version::HTTP_11);
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn http2_only_never_falls_back_on_http() {
    let server = plain(OnPreface::Close).await;
    let upstream = Upstream::new(
        pushgate_upstream_http::UpstreamSettings {
            versions: Versions::Http2Only,
            ..settings(server.http_url())
        },
        "test",
    )
    .expect("upstream");
    let error = upstream.send(get("/")).await.expect_err("no HTTP/2");
    assert!(
        matches!(error, UpstreamError::Connect(ConnectFailure::Handshake)),
        "{error:?}"
    );
    assert!(server.seen.versions().is_empty());
}

#[tokio::test]
async fn http1_only_sends_http1_at_once() {
    let server = plain(OnPreface::Http2).await;
    let upstream = Upstream::new(
        pushgate_upstream_http::UpstreamSettings {
            versions: Versions::Http1Only,
            ..settings(server.http_url())
        },
        "test",
    )
    .expect("upstream");
    let answer = upstream.send(get("/")).await.expect("answer");
    assert_eq!(answer.version, Version::HTTP_11);
    assert_eq!(server.seen.connections(), 1);
}

#[tokio::test]
async fn an_https_server_offering_only_http1_gets_http1() {
    let server = tls(&[b"http/1.1"]).await;
    let upstream = Upstream::new(settings(server.https_url()), "test").expect("upstream");
    for _ in 0..3 {
        let answer = upstream.send(get("/")).await.expect("answer");
        assert_eq!(answer.version, Version::HTTP_11);
        assert_eq!(answer.body, "ok");
    }
    assert_eq!(server.seen.versions(), vec![Version::HTTP_11; 3]);
    assert_eq!(
        server.seen.connections(),
        1,
        "the connection ALPN chose HTTP/1.1 on carries every request"
    );
}

#[tokio::test]
async fn an_https_server_offering_no_alpn_gets_http1() {
    let server = tls(&[]).await;
    let upstream = Upstream::new(settings(server.https_url()), "test").expect("upstream");
    let answer = upstream.send(get("/")).await.expect("answer");
    assert_eq!(answer.version, Version::HTTP_11);
}

#[tokio::test]
async fn an_https_server_offering_h2_gets_http2() {
    let server = tls(&[b"h2", b"http/1.1"]).await;
    let upstream = Upstream::new(settings(server.https_url()), "test").expect("upstream");
    let answers = futures::future::join_all((0..5).map(|_| upstream.send(get("/")))).await;
    for answer in answers {
        assert_eq!(answer.expect("answer").version, Version::HTTP_2);
    }
    assert_eq!(server.seen.versions(), vec![Version::HTTP_2; 5]);
    assert_eq!(server.seen.connections(), 1);
}

#[tokio::test]
async fn http2_only_refuses_an_https_server_without_h2() {
    // Without ALPN the server chooses nothing; with only `http/1.1` on offer, it refuses the
    // handshake (RFC 7301 §3.2).
    for (alpn, expected) in [
        (&[][..], ConnectFailure::NoHttp2),
        (&[&b"http/1.1"[..]][..], ConnectFailure::Tls),
    ] {
        let server = tls(alpn).await;
        let upstream = Upstream::new(
            pushgate_upstream_http::UpstreamSettings {
                versions: Versions::Http2Only,
                ..settings(server.https_url())
            },
            "test",
        )
        .expect("upstream");
        let error = upstream.send(get("/")).await.expect_err("no HTTP/2");
        assert!(
            matches!(&error, UpstreamError::Connect(failure) if *failure == expected),
            "{error:?}"
        );
        assert!(server.seen.versions().is_empty());
    }
}

#[tokio::test]
async fn a_certificate_the_platform_does_not_trust_is_a_tls_failure() {
    let server = tls(&[b"h2"]).await;
    let upstream = Upstream::new(
        pushgate_upstream_http::UpstreamSettings {
            tls_roots: pushgate_upstream_http::TlsRoots::Platform,
            ..settings(server.https_url())
        },
        "test",
    )
    .expect("upstream");
    let error = upstream.send(get("/")).await.expect_err("untrusted");
    assert!(
        matches!(error, UpstreamError::Connect(ConnectFailure::Tls)),
        "{error:?}"
    );
}
