//! Interop tests against a real ejabberd started by each test (skipped with a printed reason
//! when ejabberd is not installed, unless `PUSHGATE_INTEROP=required`).
#![allow(clippy::unwrap_used)]

mod client;
mod component_link;

interop_tests!(pushgate_testkit::ejabberd::EjabberdInstance);
