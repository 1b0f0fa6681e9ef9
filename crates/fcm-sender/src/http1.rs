//! The general-purpose HTTP client: for the OAuth2 token endpoint (asked once an hour), and for
//! sends to an `http://` relay that speaks HTTP/1.1 only
//! ([`FcmConfig::http2_prior_knowledge`] off).

use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Method, Url};

use crate::config::FcmConfig;
use crate::response_body::{Answer, read_capped, transport_failure};

/// The `Content-Type` of every send.
const JSON_CONTENT_TYPE: HeaderValue = HeaderValue::from_static("application/json; charset=UTF-8");

/// The client; it negotiates the HTTP version as usual.
pub(crate) fn client(config: &FcmConfig) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("pushgate/", env!("CARGO_PKG_VERSION")))
        // A redirect would carry the bearer token elsewhere; FCM never sends one.
        .redirect(reqwest::redirect::Policy::none())
        // Retries are this crate's own, with FCM's classification and the wake-up deadline.
        .retry(reqwest::retry::never())
        .connect_timeout(config.request_deadline)
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
}

/// Sends to an HTTP/1.1 relay: one connection per send in flight.
#[derive(Debug)]
pub(crate) struct Http1Relay {
    pub(crate) client: reqwest::Client,
    pub(crate) url: Url,
}

impl Http1Relay {
    /// POSTs `body` with `authorization` and reads the answer.
    pub(crate) async fn post(
        &self,
        authorization: &HeaderValue,
        body: &Bytes,
    ) -> Result<Answer, &'static str> {
        let mut request = reqwest::Request::new(Method::POST, self.url.clone());
        let headers = request.headers_mut();
        headers.insert(AUTHORIZATION, authorization.clone());
        headers.insert(CONTENT_TYPE, JSON_CONTENT_TYPE);
        *request.body_mut() = Some(body.clone().into());
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|error| transport_failure(&error))?;
        let status = response.status().as_u16();
        let retry_after = response.headers().get(RETRY_AFTER).cloned();
        Ok(Answer {
            status,
            retry_after,
            body: read_capped(response).await,
        })
    }
}
