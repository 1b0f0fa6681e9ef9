//! A [`Waker`] that answers what the test scripts.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::device::PushService;
use crate::waker::{WakeOutcome, WakeRequest, Waker};

/// One wake-up asked of a [`ScriptedWaker`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WakeCall {
    /// The push service.
    pub service: PushService,
    /// The token woken.
    pub token: String,
    /// The device hash sent along (empty when the publish named none).
    pub device: String,
}

/// A waker that answers the outcome set last (at first `Accepted`) and records every
/// wake-up.
#[derive(Debug)]
pub struct ScriptedWaker {
    answer: Mutex<WakeOutcome>,
    calls: Mutex<Vec<WakeCall>>,
}

impl Default for ScriptedWaker {
    fn default() -> Self {
        Self::answering(WakeOutcome::Accepted)
    }
}

impl ScriptedWaker {
    /// A waker answering `outcome`.
    pub fn answering(outcome: WakeOutcome) -> Self {
        Self {
            answer: Mutex::new(outcome),
            calls: Mutex::new(Vec::new()),
        }
    }

    /// Answers `outcome` from now on.
    pub fn answer(&self, outcome: WakeOutcome) {
        *super::lock(&self.answer) = outcome;
    }

    /// Every wake-up so far, oldest first.
    pub fn calls(&self) -> Vec<WakeCall> {
        super::lock(&self.calls).clone()
    }

    /// (token, device hash) of every wake-up so far.
    pub fn tokens_and_devices(&self) -> Vec<(String, String)> {
        self.calls()
            .into_iter()
            .map(|call| (call.token, call.device))
            .collect()
    }
}

#[async_trait]
impl Waker for ScriptedWaker {
    async fn wake(&self, request: WakeRequest<'_>) -> WakeOutcome {
        super::lock(&self.calls).push(WakeCall {
            service: request.service,
            token: request.token.to_owned(),
            device: request
                .device
                .map_or_else(String::new, |d| d.as_str().to_owned()),
        });
        super::lock(&self.answer).clone()
    }
}
