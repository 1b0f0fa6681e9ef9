//! A [`Sleeper`] that moves a [`FixedClock`] instead of waiting.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{FixedClock, Sleeper};

/// Sleeps by moving `clock` forward at once, and records each sleep.
#[derive(Debug)]
pub struct ClockSleeper {
    clock: Arc<FixedClock>,
    slept: std::sync::Mutex<Vec<Duration>>,
}

impl ClockSleeper {
    /// A sleeper that moves `clock`.
    pub fn new(clock: Arc<FixedClock>) -> Self {
        Self {
            clock,
            slept: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Every sleep so far, oldest first.
    pub fn slept(&self) -> Vec<Duration> {
        super::lock(&self.slept).clone()
    }
}

impl Sleeper for ClockSleeper {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        super::lock(&self.slept).push(duration);
        self.clock
            .advance(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX));
        Box::pin(std::future::ready(()))
    }
}
