//! The payload's standard input: bytes pumped into a non-blocking pipe from the caller's stdin or
//! from memory, so the supervisor's poll loop never blocks on a slow reader.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;

use super::supervise::{CHUNK, Stdin};
use crate::sys;

/// Pumps bytes into the payload's stdin pipe without ever blocking the loop.
pub(super) struct Feeder {
    pipe: Option<OwnedFd>,
    pending: Vec<u8>,
    offset: usize,
    /// Whether more input may come from our own stdin.
    source_open: bool,
}

impl Feeder {
    pub(super) fn new(stdin: &Stdin, pipe: OwnedFd) -> Feeder {
        let _ = nix::fcntl::fcntl(
            &pipe,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        let (pending, source_open) = match stdin {
            Stdin::Inherit => (Vec::new(), true),
            Stdin::Bytes(b) => (b.clone(), false),
            Stdin::Null => (Vec::new(), false),
        };
        let mut f = Feeder {
            pipe: Some(pipe),
            pending,
            offset: 0,
            source_open,
        };
        f.flush();
        f
    }

    pub(super) fn wants_input(&self) -> bool {
        self.pipe.is_some() && self.source_open && self.offset >= self.pending.len()
    }

    pub(super) fn wants_output(&self) -> bool {
        self.pipe.is_some() && self.offset < self.pending.len()
    }

    pub(super) fn pipe_fd(&self) -> BorrowedFd<'_> {
        self.pipe
            .as_ref()
            .expect("wants_output checked the pipe")
            .as_fd()
    }

    pub(super) fn fill(&mut self) {
        self.pending.resize(CHUNK, 0);
        self.offset = 0;
        match nix::unistd::read(sys::borrow_fd(0), &mut self.pending) {
            Ok(n) if n > 0 => self.pending.truncate(n),
            Err(Errno::EINTR | Errno::EAGAIN) => self.pending.clear(),
            _ => {
                self.pending.clear();
                self.source_open = false;
            }
        }
        self.flush();
    }

    pub(super) fn flush(&mut self) {
        while let Some(pipe) = &self.pipe {
            if self.offset >= self.pending.len() {
                if !self.source_open {
                    self.close();
                }
                return;
            }
            match nix::unistd::write(pipe, &self.pending[self.offset..]) {
                Ok(n) => self.offset += n,
                Err(Errno::EAGAIN | Errno::EINTR) => return,
                // EPIPE: the payload closed its stdin; nothing more to deliver.
                Err(_) => self.close(),
            }
        }
    }

    pub(super) fn close(&mut self) {
        self.pipe = None;
        self.source_open = false;
    }
}
