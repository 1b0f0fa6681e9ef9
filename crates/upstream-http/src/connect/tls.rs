//! TLS: rustls with aws-lc-rs, ALPN (RFC 7301) offering what [`Versions`] allows, trusting the
//! platform's roots or the settings' own.

use std::sync::Arc;

use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::ServerCertVerifier;
use tokio_rustls::rustls::crypto::{CryptoProvider, aws_lc_rs};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::settings::{TlsRoots, Versions};

/// The ALPN name of HTTP/2.
pub(crate) const ALPN_H2: &[u8] = b"h2";
/// The ALPN name of HTTP/1.1.
pub(crate) const ALPN_HTTP1: &[u8] = b"http/1.1";

/// A connector offering the ALPN names `versions` allows.
pub(crate) fn connector(
    versions: Versions,
    roots: &TlsRoots,
) -> Result<TlsConnector, rustls::Error> {
    // A provider the process installed wins, as it does for reqwest's clients.
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(aws_lc_rs::default_provider()));
    let verifier: Arc<dyn ServerCertVerifier> = match roots {
        TlsRoots::Platform => Arc::new(rustls_platform_verifier::Verifier::new(Arc::clone(
            &provider,
        ))?),
        TlsRoots::Only(certificates) => {
            let mut store = RootCertStore::empty();
            for certificate in certificates {
                store.add(certificate.clone())?;
            }
            WebPkiServerVerifier::builder_with_provider(Arc::new(store), Arc::clone(&provider))
                .build()
                .map_err(|error| rustls::Error::General(error.to_string()))?
        }
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = match versions {
        Versions::Negotiate => vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()],
        Versions::Http2Only => vec![ALPN_H2.to_vec()],
        Versions::Http1Only => vec![ALPN_HTTP1.to_vec()],
    };
    Ok(TlsConnector::from(Arc::new(config)))
}
