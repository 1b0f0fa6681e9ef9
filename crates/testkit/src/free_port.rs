//! Free TCP ports on 127.0.0.1 for servers that cannot be handed a listening socket.
//!
//! Prosody and ejabberd read their ports from a config file, so the port must be chosen before
//! they start. Asking the kernel for port 0 and closing the socket again leaves a small window
//! in which another process may take the port; remembering every port handed out in this
//! process at least keeps parallel tests of one test binary from colliding with each other.

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{LazyLock, Mutex};

static HANDED_OUT: LazyLock<Mutex<HashSet<u16>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

/// Returns a TCP port on 127.0.0.1 that was free a moment ago and has not been returned before
/// by this process.
pub fn free_loopback_port() -> io::Result<u16> {
    for _ in 0..64 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let mut handed_out = HANDED_OUT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        "no unused loopback port found in 64 attempts",
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let a = free_loopback_port().unwrap();
        let b = free_loopback_port().unwrap();
        assert_ne!(a, b);
        assert!(TcpListener::bind((Ipv4Addr::LOCALHOST, a)).is_ok());
    }
}
