//! The HTTP version on the wire: HTTP/2 with prior knowledge on one connection for `http://`,
//! only `h2` offered by ALPN for `https://`.

use std::time::Duration;

use pushgate_core::WakeOutcome;
use pushgate_fcm::{FcmConfig, RetryPolicy};
use pushgate_testkit::fake_fcm::{Answer, FakeFcm};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpListener;

use super::{config, is_transient, sender_with, start, wake};

#[tokio::test]
async fn a_burst_of_wake_ups_shares_one_http2_connection() {
    let (fake, sender) = start().await;
    fake.set_default_answer(Answer::success().after(Duration::from_millis(20)));
    // A cold burst: no connection and no token yet when all 50 start.
    let outcomes = futures::future::join_all((0..50).map(|n| {
        let sender = &sender;
        async move { wake(sender, &format!("burst-{n}")).await }
    }))
    .await;
    assert!(outcomes.iter().all(|o| *o == WakeOutcome::Accepted));
    assert!(fake.max_in_flight() > 1, "the sends overlapped");
    assert_eq!(fake.send_requests(), 50);
    assert_eq!(fake.sends_over_http2(), 50);
    // One connection to the token endpoint, one carrying every send.
    assert_eq!(fake.connections(), 2);

    assert_eq!(wake(&sender, "later").await, WakeOutcome::Accepted);
    assert_eq!(fake.sends_over_http2(), 51);
    assert_eq!(fake.connections(), 2, "the connection is reused");
}

#[tokio::test]
async fn without_prior_knowledge_an_http_url_gets_http1() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    let config = FcmConfig {
        http2_prior_knowledge: false,
        ..config(&fake)
    };
    let sender = sender_with(&fake, &config);
    assert_eq!(wake(&sender, "old-relay").await, WakeOutcome::Accepted);
    assert_eq!(fake.send_requests(), 1);
    assert_eq!(fake.sends_over_http2(), 0);
}

#[tokio::test]
async fn an_https_url_offers_only_h2_by_alpn() {
    let fake = FakeFcm::start().await.expect("fake FCM");
    // Stands in for FCM's TLS port: reads the ClientHello and hangs up.
    let tls_port = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let config = FcmConfig {
        api_url: format!("https://{}", tls_port.local_addr().expect("addr")),
        request_deadline: Duration::from_secs(2),
        ..config(&fake)
    };
    let sender = sender_with(&fake, &config).with_retry_policy(RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    });
    let (outcome, hello) = tokio::join!(wake(&sender, "tls"), async {
        let (mut stream, _) = tls_port.accept().await.expect("accept");
        let mut header = [0u8; 5];
        stream.read_exact(&mut header).await.expect("record header");
        let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let mut record = vec![0u8; length];
        stream.read_exact(&mut record).await.expect("record");
        assert_eq!(header[0], 22, "a TLS handshake record (RFC 8446 §5.1)");
        record
    });
    assert!(is_transient(&outcome), "{outcome:?}");
    assert_eq!(alpn_offer(&hello), Some(vec![b"h2".to_vec()]));
}

/// The protocol names of the ALPN extension (RFC 7301 §3.1) of a ClientHello
/// (RFC 8446 §4.1.2) that fits in one record.
fn alpn_offer(hello: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut reader = Reader(hello);
    if reader.take(1)? != [1] {
        return None; // not a ClientHello
    }
    let mut body = Reader(reader.take_with_length(3)?);
    body.take(2 + 32)?; // legacy_version, random
    body.take_with_length(1)?; // legacy_session_id
    body.take_with_length(2)?; // cipher_suites
    body.take_with_length(1)?; // legacy_compression_methods
    let mut extensions = Reader(body.take_with_length(2)?);
    while !extensions.0.is_empty() {
        let kind = extensions.take(2)?;
        let data = extensions.take_with_length(2)?;
        if kind == [0, 16] {
            let mut names = Reader(Reader(data).take_with_length(2)?);
            let mut offer = Vec::new();
            while !names.0.is_empty() {
                offer.push(names.take_with_length(1)?.to_vec());
            }
            return Some(offer);
        }
    }
    None
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.0.split_at_checked(count)?;
        self.0 = rest;
        Some(taken)
    }

    /// A vector with a big-endian length prefix of `prefix` bytes.
    fn take_with_length(&mut self, prefix: usize) -> Option<&'a [u8]> {
        let length = self
            .take(prefix)?
            .iter()
            .fold(0usize, |length, &byte| length << 8 | usize::from(byte));
        self.take(length)
    }
}
