//! Interop tests against a real Prosody started by each test (skipped with a printed reason
//! when Prosody is not installed, unless `PUSHGATE_INTEROP=required`).
#![allow(clippy::unwrap_used)]

mod client;
mod component_link;

interop_tests!(pushgate_testkit::prosody::ProsodyInstance);
