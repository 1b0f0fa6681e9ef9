//! The byte transport under the XML stream: a buffered, counting read half and a write half that
//! the writer task takes over once the handshake is done.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

const READ_BUFFER: usize = 16 * 1024;

/// The I/O object of one session as seen by the XML stream.
pub(crate) struct LinkIo {
    read: BufReader<OwnedReadHalf>,
    // Bytes consumed since the last complete top-level element.
    pending_bytes: Cell<usize>,
    hard_limit: usize,
    // Only the handshake writes through the XML stream; afterwards the writer task owns the
    // write half (taken out through `&self`, hence the lock, which is never contended).
    write: Mutex<Option<OwnedWriteHalf>>,
}

impl LinkIo {
    pub(crate) fn new(stream: TcpStream, hard_limit: usize) -> Self {
        let (read, write) = stream.into_split();
        Self {
            read: BufReader::with_capacity(READ_BUFFER, read),
            pending_bytes: Cell::new(0),
            hard_limit,
            write: Mutex::new(Some(write)),
        }
    }

    /// Hands the write half to the writer task.
    pub(crate) fn take_writer(&self) -> Option<OwnedWriteHalf> {
        self.write
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Called after each complete top-level element.
    pub(crate) fn element_done(&self) {
        self.pending_bytes.set(0);
    }

    fn over_limit(&self) -> bool {
        self.pending_bytes.get() > self.hard_limit
    }
}

/// The error [`LinkIo`] reads return once a stanza passed the hard size bound.
#[derive(Debug, thiserror::Error)]
#[error("stanza exceeds the hard size bound")]
pub(crate) struct HardLimitExceeded;

fn hard_limit_error() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, HardLimitExceeded)
}

/// Whether an I/O error came from [`LinkIo`]'s hard size bound.
pub(crate) fn is_hard_limit_error(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<HardLimitExceeded>())
}

impl AsyncRead for LinkIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.over_limit() {
            return Poll::Ready(Err(hard_limit_error()));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.read).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        this.pending_bytes
            .set(this.pending_bytes.get().saturating_add(n));
        result
    }
}

impl AsyncBufRead for LinkIo {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.over_limit() {
            return Poll::Ready(Err(hard_limit_error()));
        }
        Pin::new(&mut this.read).poll_fill_buf(cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.pending_bytes
            .set(this.pending_bytes.get().saturating_add(amt));
        Pin::new(&mut this.read).consume(amt);
    }
}

fn writer_gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the write half belongs to the writer task",
    )
}

impl AsyncWrite for LinkIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut guard = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        match guard.as_mut() {
            Some(w) => Pin::new(w).poll_write(cx, data),
            None => Poll::Ready(Err(writer_gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut guard = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        match guard.as_mut() {
            Some(w) => Pin::new(w).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut guard = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        match guard.as_mut() {
            Some(w) => Pin::new(w).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}
