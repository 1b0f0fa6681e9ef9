//! Stand-ins for the ports, for the tests of every crate: the store in memory, a waker and a
//! client link that answer from a script and record what they were asked. Compiled for this
//! crate's tests and, for other crates' tests, with the `test-support` feature (enable it in
//! `[dev-dependencies]` only).

mod clock_sleeper;
mod memory_store;
mod scripted_client;
mod scripted_waker;

pub use crate::clock::FixedClock;
pub use clock_sleeper::ClockSleeper;
pub use memory_store::MemoryStore;
pub use scripted_client::{Received, ScriptedClient};
pub use scripted_waker::{ScriptedWaker, WakeCall};

/// Locks a fake's state. A panic while holding it can only come from a test assertion, which
/// leaves the state as good as it was, so a poisoned lock is taken as it is.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
