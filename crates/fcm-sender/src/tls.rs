//! TLS towards FCM: rustls with aws-lc-rs, offering only `h2` by ALPN (RFC 7301), and trusting
//! what the platform trusts, through the same verifier the token endpoint's client uses
//! (`rustls-platform-verifier`: on Linux the system's CA bundle, read when first needed).

use std::sync::Arc;

use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::crypto::{CryptoProvider, aws_lc_rs};
use tokio_rustls::rustls::{self, ClientConfig};

/// The only protocol offered: every wake-up is one stream on one HTTP/2 connection.
pub(crate) const ALPN_H2: &[u8] = b"h2";

/// A connector for FCM's TLS port.
pub(crate) fn connector() -> Result<TlsConnector, rustls::Error> {
    // A provider the process installed wins, as it does for the token endpoint's client.
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(aws_lc_rs::default_provider()));
    let verifier = rustls_platform_verifier::Verifier::new(Arc::clone(&provider))?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}
