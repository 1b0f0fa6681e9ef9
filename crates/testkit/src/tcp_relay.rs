//! A TCP relay between two local peers that a test can cut: every connection it carries can be
//! reset at once (RST, as a failing network or a restarting load balancer does), and it records
//! when each connection was made, so a test can tell when a link came back.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A relay from a port of its own to `target`.
pub struct TcpRelay {
    address: SocketAddr,
    state: Arc<Mutex<RelayState>>,
    acceptor: JoinHandle<()>,
}

#[derive(Default)]
struct RelayState {
    pipes: Vec<JoinHandle<()>>,
    connected_at: Vec<Instant>,
    resets: usize,
}

fn lock(state: &Mutex<RelayState>) -> std::sync::MutexGuard<'_, RelayState> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl TcpRelay {
    /// Listens on 127.0.0.1 (a free port) and relays each connection to `target`.
    pub async fn start(target: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let state = Arc::new(Mutex::new(RelayState::default()));
        let acceptor = tokio::spawn(accept_loop(listener, target, Arc::clone(&state)));
        Ok(Self {
            address,
            state,
            acceptor,
        })
    }

    /// The relay's own port, for the side that connects.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Resets every connection the relay carries now: both sides get a RST.
    pub fn reset_all(&self) {
        let mut state = lock(&self.state);
        for pipe in state.pipes.drain(..) {
            // Dropping the sockets with a zero linger sends RST.
            pipe.abort();
        }
        state.resets += 1;
    }

    /// When each connection was made, in order.
    pub fn connected_at(&self) -> Vec<Instant> {
        lock(&self.state).connected_at.clone()
    }

    /// How many times [`Self::reset_all`] ran.
    pub fn resets(&self) -> usize {
        lock(&self.state).resets
    }
}

impl Drop for TcpRelay {
    fn drop(&mut self) {
        self.acceptor.abort();
        for pipe in lock(&self.state).pipes.drain(..) {
            pipe.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, state: Arc<Mutex<RelayState>>) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Ok(outbound) = TcpStream::connect(target).await else {
            // The target is down: the connecting side sees its connection closed.
            continue;
        };
        for socket in [&inbound, &outbound] {
            // A zero linger makes a drop send RST at once; it is a non-zero one that would
            // block the thread on drop, which is why tokio marks the call deprecated.
            #[allow(deprecated)]
            let _ = socket.set_linger(Some(Duration::ZERO));
            let _ = socket.set_nodelay(true);
        }
        let pipe = tokio::spawn(async move {
            let (mut inbound, mut outbound) = (inbound, outbound);
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        });
        let mut state = lock(&state);
        state.pipes.retain(|pipe| !pipe.is_finished());
        state.pipes.push(pipe);
        state.connected_at.push(Instant::now());
    }
}
