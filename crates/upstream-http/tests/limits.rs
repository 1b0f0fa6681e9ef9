//! The body cap, the deadline, `Retry-After`, the concurrency limit: each a typed answer.

mod support;

use std::time::Duration;

use http::StatusCode;
use pushgate_upstream_http::{Upstream, UpstreamError, UpstreamSettings};
use tokio::time::Instant;

use support::{OnPreface, get, plain, settings};

#[tokio::test]
async fn a_body_over_the_cap_is_a_typed_error_on_both_versions() {
    for server in [plain(OnPreface::Http2).await, plain(OnPreface::Close).await] {
        let upstream = Upstream::new(
            UpstreamSettings {
                max_body_bytes: 1000,
                ..settings(server.http_url())
            },
            "test",
        )
        .expect("upstream");
        let error = upstream.send(get("/big")).await.expect_err("too large");
        assert!(
            matches!(
                error,
                UpstreamError::BodyTooLarge {
                    status: StatusCode::OK,
                    limit: 1000,
                    ..
                }
            ),
            "{error:?}"
        );
        // Under the cap is fine.
        assert_eq!(upstream.send(get("/")).await.expect("answer").body, "ok");
    }
}

#[tokio::test]
async fn a_request_past_its_deadline_is_timed_out() {
    let server = plain(OnPreface::Http2).await;
    let upstream = Upstream::new(
        UpstreamSettings {
            request_timeout: Some(Duration::from_millis(300)),
            ..settings(server.http_url())
        },
        "test",
    )
    .expect("upstream");
    let started = Instant::now();
    let error = upstream.send(get("/slow")).await.expect_err("late");
    let took = started.elapsed();
    assert!(matches!(error, UpstreamError::TimedOut), "{error:?}");
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(800),
        "{took:?}"
    );
}

#[tokio::test]
async fn retry_after_in_seconds_and_as_a_date_is_parsed() {
    let server = plain(OnPreface::Http2).await;
    let upstream = Upstream::new(settings(server.http_url()), "test").expect("upstream");
    let seconds = upstream.send(get("/retry-seconds")).await.expect("answer");
    assert_eq!(seconds.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(seconds.retry_after, Some(Duration::from_secs(7)));
    let date = upstream.send(get("/retry-date")).await.expect("answer");
    assert_eq!(date.status, StatusCode::TOO_MANY_REQUESTS);
    let pause = date.retry_after.expect("a pause");
    assert!(
        pause > Duration::from_secs(27) && pause <= Duration::from_secs(30),
        "{pause:?}"
    );
    assert_eq!(
        upstream.send(get("/")).await.expect("answer").retry_after,
        None
    );
}

#[tokio::test]
async fn requests_beyond_the_concurrency_limit_wait_their_turn() {
    let server = plain(OnPreface::Http2).await;
    let upstream = Upstream::new(
        UpstreamSettings {
            max_concurrent: 1,
            request_timeout: Some(Duration::from_secs(10)),
            ..settings(server.http_url())
        },
        "test",
    )
    .expect("upstream");
    let started = Instant::now();
    let (first, second) = tokio::join!(upstream.send(get("/slow")), upstream.send(get("/slow")));
    first.expect("first");
    second.expect("second");
    assert!(
        started.elapsed() >= Duration::from_millis(3900),
        "one at a time"
    );
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_connect_failure() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url =
        url::Url::parse(&format!("http://{}", closed.local_addr().expect("addr"))).expect("url");
    drop(closed);
    let upstream = Upstream::new(settings(url), "test").expect("upstream");
    let error = upstream.send(get("/")).await.expect_err("refused");
    assert!(matches!(error, UpstreamError::Connect(_)), "{error:?}");
    assert!(error.to_string().contains("connect"), "{error}");
}
