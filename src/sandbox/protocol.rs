//! The child→parent protocol pipe: one JSON object per line, each written with a single `write(2)`
//! of less than `PIPE_BUF` bytes, so lines from the init and the payload never interleave.

use std::fmt::Write as _;
use std::os::fd::{AsFd, BorrowedFd};

use serde::{Deserialize, Serialize};

/// The fd number the protocol pipe has in the child (after `dup2`).
pub const CHILD_FD: i32 = 3;
/// Largest message we write: below PIPE_BUF (4096) so the write is atomic.
const MAX_LINE: usize = 4000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A set-up step failed; the sandbox never ran the payload.
    SetupFailed(SetupError),
    /// The payload finished set-up and is about to `execve`.
    Ready {
        landlock_status: String,
        landlock_abi: u32,
    },
    /// `execve` of the payload failed.
    ExecFailed { path: String, errno: i32 },
    /// The payload ended (sent by the init, PID 1).
    Exited(Exit),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupError {
    /// The set-up step, e.g. `mount tree`, `landlock`.
    pub step: String,
    /// The step's error, naming the syscall, its arguments and the path.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub user_us: u64,
    pub sys_us: u64,
    pub maxrss: u64,
}

/// Send a message from the child. Best effort: if the parent is gone there is nobody to tell.
pub fn send(fd: BorrowedFd<'_>, msg: &Message) {
    let mut line = serde_json::to_string(msg).unwrap_or_default();
    if line.len() > MAX_LINE {
        // Keep the line parseable: shorten the free-text part, never the JSON structure.
        if let Message::SetupFailed(e) = msg {
            let mut e = e.clone();
            e.message.truncate(MAX_LINE / 2);
            line = serde_json::to_string(&Message::SetupFailed(e)).unwrap_or_default();
        }
    }
    line.push('\n');
    let _ = nix::unistd::write(fd, line.as_bytes());
}

/// Send the exit report without allocating (the init runs it under a seccomp filter that has no
/// memory-management syscalls).
pub fn send_exit(fd: BorrowedFd<'_>, exit: &Exit) {
    let mut buf = StackLine::default();
    let opt = |v: Option<i32>| v.map_or(i64::MIN, i64::from);
    let _ = writeln!(
        buf,
        "{{\"Exited\":{{\"code\":{},\"signal\":{},\"user_us\":{},\"sys_us\":{},\"maxrss\":{}}}}}",
        Null(opt(exit.code)),
        Null(opt(exit.signal)),
        exit.user_us,
        exit.sys_us,
        exit.maxrss
    );
    let _ = nix::unistd::write(fd.as_fd(), &buf.buf[..buf.len]);
}

/// An integer, or `null` for `i64::MIN`.
struct Null(i64);

impl std::fmt::Display for Null {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 == i64::MIN {
            f.write_str("null")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

struct StackLine {
    buf: [u8; 256],
    len: usize,
}

impl Default for StackLine {
    fn default() -> Self {
        StackLine {
            buf: [0; 256],
            len: 0,
        }
    }
}

impl std::fmt::Write for StackLine {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Accumulates bytes from the pipe and yields complete messages.
#[derive(Default)]
pub struct Reader {
    pending: Vec<u8>,
}

impl Reader {
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Message> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=nl).collect();
            match serde_json::from_slice(&line[..line.len() - 1]) {
                Ok(msg) => out.push(msg),
                Err(e) => tracing::warn!("unparseable protocol line from the sandbox: {e}"),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_line_without_allocation_parses_back() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let exit = Exit {
            code: None,
            signal: Some(31),
            user_us: 5,
            sys_us: 7,
            maxrss: 4096,
        };
        send_exit(w.as_fd(), &exit);
        send(
            w.as_fd(),
            &Message::SetupFailed(SetupError {
                step: "mount tree".into(),
                message: "x".repeat(9000),
            }),
        );
        drop(w);
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::from(r), &mut bytes).unwrap();
        let msgs = Reader::default().feed(&bytes);
        assert_eq!(msgs[0], Message::Exited(exit));
        assert!(
            matches!(&msgs[1], Message::SetupFailed(e) if e.step == "mount tree" && e.message.len() <= MAX_LINE)
        );
    }

    #[test]
    fn reader_joins_split_lines() {
        let mut r = Reader::default();
        assert!(r.feed(b"{\"ExecFailed\":{\"path\":\"x\",").is_empty());
        let msgs = r.feed(b"\"errno\":2}}\n");
        assert_eq!(
            msgs,
            vec![Message::ExecFailed {
                path: "x".into(),
                errno: 2
            }]
        );
    }
}
