//! Through an HTTP proxy with CONNECT: the upstream's own `proxy`, or the environment's
//! (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`), injected so no test reads the process's.

mod support;

use http::Version;
use pushgate_upstream_http::{
    ConnectFailure, ProxyEnvironment, Upstream, UpstreamError, UpstreamSettings,
};
use url::Url;

use support::{ConnectProxy, OnPreface, get, plain, settings, tls};

#[tokio::test]
async fn an_http_target_through_the_upstream_s_proxy() {
    let server = plain(OnPreface::Http2).await;
    let proxy = ConnectProxy::start(None).await;
    let upstream = Upstream::new(
        UpstreamSettings {
            proxy: Some(Url::parse(&proxy.url()).expect("url")),
            ..settings(server.http_url())
        },
        "test",
    )
    .expect("upstream");
    for _ in 0..3 {
        let answer = upstream.send(get("/")).await.expect("answer");
        assert_eq!(answer.version, Version::HTTP_2);
    }
    assert_eq!(
        proxy.requests(),
        vec![(format!("CONNECT {} HTTP/1.1", server.addr), None)],
        "one tunnel for every request"
    );
}

#[tokio::test]
async fn an_https_target_through_the_upstream_s_proxy_with_credentials() {
    let server = tls(&[b"h2", b"http/1.1"]).await;
    let proxy = ConnectProxy::start(None).await;
    let proxy_url = format!("http://pushgate:s%3Acret@{}", proxy.addr);
    let upstream = Upstream::new(
        UpstreamSettings {
            proxy: Some(Url::parse(&proxy_url).expect("url")),
            ..settings(server.https_url())
        },
        "test",
    )
    .expect("upstream");
    let answer = upstream.send(get("/")).await.expect("answer");
    assert_eq!(answer.version, Version::HTTP_2);
    assert_eq!(answer.body, "ok");
    // base64("pushgate:s:cret")
    assert_eq!(
        proxy.requests(),
        vec![(
            format!("CONNECT {} HTTP/1.1", server.addr),
            Some("Basic cHVzaGdhdGU6czpjcmV0".to_owned())
        )]
    );
}

#[tokio::test]
async fn an_https_http1_target_through_the_environment_s_proxy() {
    let server = tls(&[b"http/1.1"]).await;
    let proxy = ConnectProxy::start(None).await;
    let environment = ProxyEnvironment {
        https_proxy: Some(proxy.url()),
        http_proxy: None,
        no_proxy: Some("fcm.googleapis.com, localhost".to_owned()),
    };
    let upstream = Upstream::new(
        UpstreamSettings {
            proxy_environment: environment,
            ..settings(server.https_url())
        },
        "test",
    )
    .expect("upstream");
    let answer = upstream.send(get("/")).await.expect("answer");
    assert_eq!(answer.version, Version::HTTP_11);
    assert_eq!(proxy.requests().len(), 1);
    assert!(proxy.requests()[0].0.starts_with("CONNECT 127.0.0.1:"));
}

#[tokio::test]
async fn no_proxy_and_the_other_scheme_s_variable_go_direct() {
    let server = plain(OnPreface::Http2).await;
    let proxy = ConnectProxy::start(None).await;
    let listed = ProxyEnvironment {
        http_proxy: Some(proxy.url()),
        https_proxy: None,
        no_proxy: Some(format!("127.0.0.1:{}", server.addr.port())),
    };
    let other_scheme = ProxyEnvironment {
        http_proxy: None,
        https_proxy: Some(proxy.url()),
        no_proxy: None,
    };
    for environment in [listed, other_scheme] {
        let upstream = Upstream::new(
            UpstreamSettings {
                proxy_environment: environment,
                ..settings(server.http_url())
            },
            "test",
        )
        .expect("upstream");
        upstream.send(get("/")).await.expect("answer");
    }
    assert!(proxy.requests().is_empty());
    assert_eq!(server.seen.connections(), 2);
}

#[tokio::test]
async fn a_proxy_refusing_the_tunnel_is_a_connect_failure() {
    let server = plain(OnPreface::Http2).await;
    let proxy = ConnectProxy::start(Some(403)).await;
    let upstream = Upstream::new(
        UpstreamSettings {
            proxy: Some(Url::parse(&proxy.url()).expect("url")),
            ..settings(server.http_url())
        },
        "test",
    )
    .expect("upstream");
    let error = upstream.send(get("/")).await.expect_err("refused");
    assert!(
        matches!(error, UpstreamError::Connect(ConnectFailure::ProxyRefused)),
        "{error:?}"
    );
    assert_eq!(server.seen.connections(), 0);
}

#[tokio::test]
async fn an_unreachable_proxy_is_a_connect_failure() {
    let server = plain(OnPreface::Http2).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let proxy_url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let upstream = Upstream::new(
        UpstreamSettings {
            proxy: Some(Url::parse(&proxy_url).expect("url")),
            ..settings(server.http_url())
        },
        "test",
    )
    .expect("upstream");
    let error = upstream.send(get("/")).await.expect_err("unreachable");
    assert!(
        matches!(
            error,
            UpstreamError::Connect(ConnectFailure::ProxyUnreachable)
        ),
        "{error:?}"
    );
}
