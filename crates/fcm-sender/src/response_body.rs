//! Reading the token endpoint's answer with a size cap: Google's answers are small, and a
//! broken proxy in between must not make pushgate buffer without end.

/// The most bytes read from an FCM or token-endpoint answer.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The connection failed while the body came in; a short, token-free description.
    Transport(&'static str),
    /// The body is longer than [`MAX_BODY_BYTES`].
    TooLarge,
}

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`]. Reading to the end also lets
/// an HTTP/1.1 connection go back to the pool.
pub(crate) async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|length| length > MAX_BODY_BYTES as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| BodyError::Transport(transport_failure(&error)))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A short, token-free description of a transport failure, for logs and outcomes.
pub(crate) fn transport_failure(error: &reqwest::Error) -> &'static str {
    if error.is_connect() {
        "cannot connect"
    } else if error.is_timeout() {
        "timed out"
    } else if error.is_body() || error.is_decode() {
        "connection failed while reading the answer"
    } else {
        "connection failed"
    }
}
