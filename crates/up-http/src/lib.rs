//! The RFC 8030 HTTP side of the UnifiedPush provider
