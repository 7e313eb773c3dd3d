//! Live copies of the payload's output to our own stdout/stderr without ever blocking the
//! supervisor: bytes wait in a queue, bounded by the output cap, and go out only when `poll(2)`
//! says the descriptor can take them (a stdout nobody reads must not stop the clock, the limits or
//! the stdin pump).

use std::os::fd::BorrowedFd;

use nix::errno::Errno;

use crate::sys;

/// At most this much per write after `POLLOUT`: a pipe that polls writable has a free page, so a
/// write of up to `PIPE_BUF` bytes never blocks.
const WRITE_CHUNK: usize = 4096;

/// Pending output for one of our descriptors (1 or 2).
pub(super) struct EchoQueue {
    fd: i32,
    pending: Vec<u8>,
    /// Bytes not queued because the queue was full (the verdict's capture still has them).
    pub dropped: u64,
    limit: usize,
}

impl EchoQueue {
    pub(super) fn new(fd: i32, limit: u64) -> EchoQueue {
        EchoQueue {
            fd,
            pending: Vec::new(),
            dropped: 0,
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        }
    }

    pub(super) fn push(&mut self, data: &[u8]) {
        let room = self.limit.saturating_sub(self.pending.len());
        let take = data.len().min(room);
        self.pending.extend_from_slice(&data[..take]);
        self.dropped += (data.len() - take) as u64;
    }

    /// The descriptor to poll for `POLLOUT`, when something waits.
    pub(super) fn wants_output(&self) -> Option<BorrowedFd<'static>> {
        (!self.pending.is_empty()).then(|| sys::borrow_fd(self.fd))
    }

    /// One write of at most `WRITE_CHUNK` bytes (call after `POLLOUT`). A reader that went away
    /// (`EPIPE`) gets nothing more.
    pub(super) fn write_some(&mut self) {
        let n = self.pending.len().min(WRITE_CHUNK);
        match nix::unistd::write(sys::borrow_fd(self.fd), &self.pending[..n]) {
            Ok(written) => {
                self.pending.drain(..written);
            }
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(_) => self.pending.clear(),
        }
    }

    /// After the run: hand over what is left, waiting for the reader (the sandbox is gone by now,
    /// so only this process waits, like any program writing to a slow pipe).
    pub(super) fn finish(&mut self) {
        while !self.pending.is_empty() {
            let before = self.pending.len();
            let n = before.min(WRITE_CHUNK);
            match nix::unistd::write(sys::borrow_fd(self.fd), &self.pending[..n]) {
                Ok(0) => break,
                Ok(written) => {
                    self.pending.drain(..written);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    let mut pfd = [nix::poll::PollFd::new(
                        sys::borrow_fd(self.fd),
                        nix::poll::PollFlags::POLLOUT,
                    )];
                    let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::NONE);
                }
                Err(_) => break,
            }
        }
    }
}
