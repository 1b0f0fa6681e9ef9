//! A request as the upstream sends it: a head that many requests share, prepared once, the
//! few header fields of the request's own, and its body.
//!
//! A sender in a hot path (a wake-up per publish) sends the same method, URI and most header
//! fields every time. Holding a whole `http::request::Parts` per request in flight cost about
//! a kilobyte each (a `HeaderMap` is a table of its own); the shared head costs a reference
//! count, and the request's own fields (an `Authorization` that changes hourly) a few bytes.
//! The head the wire needs is built from the two when a stream or a request is opened, and
//! dropped once written.

use std::sync::Arc;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

/// The method, absolute URI and header fields that many requests share
/// ([`Upstream::prepare`](crate::Upstream::prepare) builds one).
#[derive(Debug)]
pub struct RequestHead {
    pub(crate) method: Method,
    /// Absolute: the upstream's scheme and authority are filled in by `prepare`.
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
}

impl RequestHead {
    pub(crate) fn from_parts(parts: Parts) -> Self {
        Self {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
        }
    }

    /// The URI the request goes to.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }
}

/// One request: a shared [`RequestHead`], header fields of its own (added to the head's,
/// replacing none), perhaps a path of its own, and the body.
#[derive(Debug)]
pub struct UpstreamRequest {
    pub(crate) head: Arc<RequestHead>,
    pub(crate) own_headers: Vec<(HeaderName, HeaderValue)>,
    /// Replaces the head's path and query (APNs names the device in the path). Boxed: every
    /// request in flight holds this field, most of them without a path of their own.
    pub(crate) path: Option<Box<PathAndQuery>>,
    pub(crate) body: Bytes,
}

impl UpstreamRequest {
    /// A request with `head` and `body`, no header field of its own yet.
    pub fn new(head: Arc<RequestHead>, body: Bytes) -> Self {
        Self {
            head,
            own_headers: Vec::new(),
            path: None,
            body,
        }
    }

    /// Sends the request to `path` (and query) on the head's scheme and authority, in place
    /// of the head's own.
    pub fn path(mut self, path: PathAndQuery) -> Self {
        self.path = Some(Box::new(path));
        self
    }

    /// Adds a header field of this request's own (an `Authorization`, an `apns-id`).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.own_headers.push((name, value));
        self
    }

    /// The absolute URI for the wire: the head's, with the request's own path if it has one.
    pub(crate) fn wire_uri(&self) -> Uri {
        let Some(path) = &self.path else {
            return self.head.uri.clone();
        };
        let mut parts = self.head.uri.clone().into_parts();
        parts.path_and_query = Some(PathAndQuery::clone(path));
        // The head's URI is absolute (prepare checked it) and a PathAndQuery is valid in any
        // absolute URI, so this cannot fail; the head's URI is the safe answer if it did.
        Uri::from_parts(parts).unwrap_or_else(|_| self.head.uri.clone())
    }

    /// The path and query for an origin-form request line (HTTP/1.1).
    pub(crate) fn wire_path(&self) -> Uri {
        match &self.path {
            Some(path) => Uri::from(PathAndQuery::clone(path)),
            None => self
                .head
                .uri
                .path_and_query()
                .map_or_else(|| Uri::from_static("/"), |path| Uri::from(path.clone())),
        }
    }

    /// The whole head for the wire: the shared fields, the request's own, and a
    /// `Content-Length` when there is a body and none was given.
    pub(crate) fn wire_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(self.head.headers.len() + 2);
        for (name, value) in &self.head.headers {
            headers.append(name.clone(), value.clone());
        }
        for (name, value) in &self.own_headers {
            headers.append(name.clone(), value.clone());
        }
        if !self.body.is_empty() && !headers.contains_key(CONTENT_LENGTH) {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;
    use http::header::{AUTHORIZATION, CONTENT_TYPE};

    #[test]
    fn the_wire_head_holds_the_shared_fields_the_own_ones_and_the_length() {
        let (mut parts, ()) = Request::new(()).into_parts();
        parts
            .headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let head = Arc::new(RequestHead::from_parts(parts));
        let request = UpstreamRequest::new(Arc::clone(&head), Bytes::from_static(b"{}"))
            .header(AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        let headers = request.wire_headers();
        assert_eq!(headers[CONTENT_TYPE], "application/json");
        assert_eq!(headers[AUTHORIZATION], "Bearer x");
        assert_eq!(headers[CONTENT_LENGTH], "2");
        assert_eq!(headers.len(), 3);

        let empty = UpstreamRequest::new(head, Bytes::new());
        assert!(!empty.wire_headers().contains_key(CONTENT_LENGTH));
    }

    #[test]
    fn a_request_may_go_to_a_path_of_its_own_on_the_heads_authority() {
        let mut head = Request::new(());
        *head.uri_mut() = Uri::from_static("https://api.example:443/3/device/");
        let (parts, ()) = head.into_parts();
        let head = Arc::new(RequestHead::from_parts(parts));
        let shared = UpstreamRequest::new(Arc::clone(&head), Bytes::new());
        assert_eq!(shared.wire_uri(), "https://api.example:443/3/device/");
        assert_eq!(shared.wire_path(), "/3/device/");
        let own = UpstreamRequest::new(head, Bytes::new())
            .path(PathAndQuery::from_static("/3/device/abcd"));
        assert_eq!(own.wire_uri(), "https://api.example:443/3/device/abcd");
        assert_eq!(own.wire_path(), "/3/device/abcd");
    }
}
