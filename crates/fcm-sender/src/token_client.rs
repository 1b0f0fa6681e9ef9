//! The general-purpose HTTP client for the OAuth2 token endpoint (asked once an hour), through
//! the same proxy as the sends.

use std::time::Duration;

use crate::config::FcmConfig;

/// The client; it negotiates the HTTP version as usual.
pub(crate) fn client(config: &FcmConfig) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("pushgate/", env!("CARGO_PKG_VERSION")))
        // A redirect would carry the grant elsewhere; Google never sends one.
        .redirect(reqwest::redirect::Policy::none())
        // Retries are this crate's own, within the wake-up deadline.
        .retry(reqwest::retry::never())
        .connect_timeout(config.request_deadline)
        .pool_idle_timeout(Duration::from_secs(90));
    // Otherwise reqwest reads HTTPS_PROXY and NO_PROXY itself, as the sends do.
    if let Some(proxy) = &config.proxy {
        let proxy = if proxy.contains("://") {
            proxy.clone()
        } else {
            format!("http://{proxy}")
        };
        builder = builder.proxy(reqwest::Proxy::all(proxy)?);
    } else if !config.proxy_from_environment {
        builder = builder.no_proxy();
    }
    builder.build()
}
