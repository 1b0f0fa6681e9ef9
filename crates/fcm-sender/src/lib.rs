//! Firebase Cloud Messaging HTTP v1 sender: OAuth2, HTTP/2 client, error classification
