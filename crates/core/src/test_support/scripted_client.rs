//! A [`ClientLink`] that answers what the test scripts.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use crate::client_link::{ClientLink, PushDelivery, UpPush};

/// What the client received: owner, application, instance, body.
pub type Received = (String, String, String, Vec<u8>);

/// A client that answers from a script (then from its default, at first `Delivered`) and
/// records what it got.
#[derive(Debug)]
pub struct ScriptedClient {
    answers: Mutex<VecDeque<PushDelivery>>,
    default: Mutex<PushDelivery>,
    received: Mutex<Vec<Received>>,
    body_addresses: Mutex<Vec<usize>>,
    silent: AtomicBool,
}

impl Default for ScriptedClient {
    fn default() -> Self {
        Self {
            answers: Mutex::new(VecDeque::new()),
            default: Mutex::new(PushDelivery::Delivered),
            received: Mutex::new(Vec::new()),
            body_addresses: Mutex::new(Vec::new()),
            silent: AtomicBool::new(false),
        }
    }
}

impl ScriptedClient {
    /// A client that takes every push.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers `delivery` from now on.
    pub fn always(&self, delivery: PushDelivery) {
        *super::lock(&self.default) = delivery;
    }

    /// Answers `delivery` once, before falling back to the default.
    pub fn then(&self, delivery: PushDelivery) {
        super::lock(&self.answers).push_back(delivery);
    }

    /// Never answers from now on, as a client that went away without a word.
    pub fn go_silent(&self) {
        self.silent.store(true, Ordering::Release);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        super::lock(&self.received).clone()
    }

    /// Forgets what was received so far.
    pub fn clear_received(&self) {
        super::lock(&self.received).clear();
    }

    /// The bodies received so far.
    pub fn received_bodies(&self) -> Vec<Vec<u8>> {
        self.received().into_iter().map(|r| r.3).collect()
    }

    /// Where in memory each body it received was, to tell whether it was copied on the way.
    pub fn body_addresses(&self) -> Vec<usize> {
        super::lock(&self.body_addresses).clone()
    }
}

#[async_trait]
impl ClientLink for ScriptedClient {
    async fn push(&self, push: UpPush<'_>) -> PushDelivery {
        super::lock(&self.body_addresses).push(push.body.as_ptr() as usize);
        super::lock(&self.received).push((
            push.owner.to_owned(),
            push.application.to_owned(),
            push.instance.to_owned(),
            push.body.to_vec(),
        ));
        if self.silent.load(Ordering::Acquire) {
            std::future::pending::<()>().await;
        }
        let scripted = super::lock(&self.answers).pop_front();
        scripted.unwrap_or_else(|| super::lock(&self.default).clone())
    }
}
