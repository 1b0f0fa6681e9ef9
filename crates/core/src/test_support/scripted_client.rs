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
        *self.default.lock().unwrap() = delivery;
    }

    /// Answers `delivery` once, before falling back to the default.
    pub fn then(&self, delivery: PushDelivery) {
        self.answers.lock().unwrap().push_back(delivery);
    }

    /// Never answers from now on, as a client that went away without a word.
    pub fn go_silent(&self) {
        self.silent.store(true, Ordering::Release);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Forgets what was received so far.
    pub fn clear_received(&self) {
        self.received.lock().unwrap().clear();
    }

    /// The bodies received so far.
    pub fn received_bodies(&self) -> Vec<Vec<u8>> {
        self.received().into_iter().map(|r| r.3).collect()
    }

    /// Where in memory each body it received was, to tell whether it was copied on the way.
    pub fn body_addresses(&self) -> Vec<usize> {
        self.body_addresses.lock().unwrap().clone()
    }
}

#[async_trait]
impl ClientLink for ScriptedClient {
    async fn push(&self, push: UpPush<'_>) -> PushDelivery {
        self.body_addresses
            .lock()
            .unwrap()
            .push(push.body.as_ptr() as usize);
        self.received.lock().unwrap().push((
            push.owner.to_owned(),
            push.application.to_owned(),
            push.instance.to_owned(),
            push.body.to_vec(),
        ));
        if self.silent.load(Ordering::Acquire) {
            std::future::pending::<()>().await;
        }
        let scripted = self.answers.lock().unwrap().pop_front();
        scripted.unwrap_or_else(|| self.default.lock().unwrap().clone())
    }
}
