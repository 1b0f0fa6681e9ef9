//! Stand-ins for the ports, for the tests of every crate: the store in memory, a waker and a
//! client link that answer from a script and record what they were asked. Compiled for this
//! crate's tests and, for other crates' tests, with the `test-support` feature (enable it in
//! `[dev-dependencies]` only).

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod memory_store;
mod scripted_client;
mod scripted_waker;

pub use crate::clock::FixedClock;
pub use memory_store::MemoryStore;
pub use scripted_client::{Received, ScriptedClient};
pub use scripted_waker::{ScriptedWaker, WakeCall};
