//! The protocol between the supervisor and the processes inside the sandbox (init, agent): one
//! `SOCK_SEQPACKET` socketpair, one enum per direction, one message per datagram.
//!
//! A message is the JSON of a `Down` or `Up` value, at most `MAX_MESSAGE` bytes, with the
//! descriptors it carries attached as `SCM_RIGHTS` (`sys::send_fds`/`sys::recv_fds`). Seqpacket
//! keeps boundaries, so nothing is framed by hand: a datagram is written whole by one `sendmsg`
//! (or one `write`, which the init uses under its tiny seccomp filter) and never interleaves with
//! another writer's. The receiver rejects an oversized datagram (`MSG_TRUNC`), bad JSON, and a
//! message whose descriptor count is not the one its variant carries; rejected descriptors are
//! closed.

use std::fmt::Write as _;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::sys;

/// The fd number the child's end of the socket has inside the sandbox (after `dup2`).
pub const CHILD_FD: i32 = 3;
/// Largest datagram either side sends or accepts. Bulk data (files, argv) travels in descriptors.
pub const MAX_MESSAGE: usize = 16 * 1024;
/// Longest free text kept in a `SetupError` (messages and paths are cut, never the JSON).
const MAX_TEXT: usize = 2048;

/// A message type of one direction: serialisable, and knowing how many descriptors it carries.
pub trait Message: Serialize + DeserializeOwned {
    /// The exact number of descriptors that travel with this message.
    fn fds(&self) -> usize;
}

/// Supervisor → sandbox. The agent reads these; the init never does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Down {
    /// Start one program. Descriptors: its stdin, stdout and stderr, then a memfd holding
    /// `spec_len` bytes of `ExecSpec` JSON followed by the contents of `ExecSpec::files`, in order.
    Exec { spec_len: u64 },
    /// Open a TCP socket listening on the sandbox's `127.0.0.1:port` (0: any free port) inside its
    /// network namespace and hand it up (`Up::Listening`).
    Listen { port: u16 },
}

impl Message for Down {
    fn fds(&self) -> usize {
        match self {
            Down::Exec { .. } => 4,
            Down::Listen { .. } => 0,
        }
    }
}

/// Sandbox → supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Up {
    /// A set-up step (or a request's preparation, such as writing an exec's files) failed.
    SetupFailed(SetupError),
    /// Set-up finished and every lock is on: the sandbox waits at the pre-exec point.
    Ready {
        landlock_status: String,
        landlock_abi: u32,
    },
    /// A program was forked (sent by the agent) with `pid` inside the sandbox. Descriptor: its
    /// pidfd, through which the supervisor signals it and learns its host pid.
    Started { pid: i32 },
    /// `execve` of a program failed (sent by its process, which then exits 126 or 127).
    ExecFailed { path: String, errno: i32 },
    /// A process the init reaped ended (sent by the init, whose child every program is), or an
    /// exec was refused before a program started (sent by the agent after `SetupFailed`, with
    /// `pid` 0 and code 125). Every `Down::Exec` ends with the `Exited` of its program's pid.
    Exited(Exit),
    /// The socket asked for with `Down::Listen`, bound to the sandbox's loopback on `port`.
    /// Descriptor: the listening socket.
    Listening { port: u16 },
}

impl Message for Up {
    fn fds(&self) -> usize {
        match self {
            Up::Started { .. } | Up::Listening { .. } => 1,
            _ => 0,
        }
    }
}

/// The body of `Down::Exec`, read by the agent from the memfd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecSpec {
    pub argv: Vec<String>,
    /// The exact environment (`KEY=VALUE` pairs); `PATH` from here is searched for `argv[0]`.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// Files to write before the program starts; their bytes follow the JSON in the memfd.
    pub files: Vec<FileSpec>,
    /// The execution's CPU-time limit in ms; the program gets it as RLIMIT_CPU (a per-process
    /// backstop of the supervisor's accounting).
    pub cpu_ms: Option<u64>,
}

/// One file of an exec: where it goes, its mode and how many bytes of the memfd are its contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSpec {
    pub path: PathBuf,
    pub mode: u32,
    pub len: u64,
}

/// A failed set-up step, as DESIGN §3 asks: the step, the syscall, the path and the errno when the
/// failure has them, and the step's own message (which names the syscall's arguments).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupError {
    /// The set-up step, e.g. `mount tree`, `landlock`.
    pub step: String,
    /// The failing system call, when one failed.
    pub syscall: Option<String>,
    /// The path it was called on, if any.
    pub path: Option<String>,
    /// The raw errno, if any.
    pub errno: Option<i32>,
    /// The step's error, naming the syscall, its arguments and the path.
    pub message: String,
}

impl SetupError {
    /// A set-up error with its free text cut to a size that always fits one datagram.
    pub fn new(
        step: &str,
        syscall: Option<&str>,
        path: Option<String>,
        errno: Option<Errno>,
        message: String,
    ) -> SetupError {
        SetupError {
            step: cut(step.to_string()),
            syscall: syscall.map(|s| cut(s.to_string())),
            path: path.map(cut),
            errno: errno.map(|e| e as i32),
            message: cut(message),
        }
    }
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.message)
    }
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// How a program ended, with its own resource usage (`wait4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// Its pid inside the sandbox; 0 when no program started.
    pub pid: i32,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub user_us: u64,
    pub sys_us: u64,
    pub maxrss: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("{call} on the protocol socket: {errno}")]
    Io { call: &'static str, errno: Errno },
    #[error("protocol message of {len} bytes or more is larger than the limit of {MAX_MESSAGE}")]
    TooLarge { len: usize },
    #[error("malformed protocol message: {0}")]
    Malformed(String),
    #[error("protocol message carries {got} descriptors, its kind carries {expected}")]
    Fds { expected: usize, got: usize },
}

/// Encode `msg` as one datagram, refusing one larger than `MAX_MESSAGE`.
pub fn encode<M: Message>(msg: &M) -> Result<Vec<u8>, ProtocolError> {
    let bytes = serde_json::to_vec(msg).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    if bytes.len() > MAX_MESSAGE {
        return Err(ProtocolError::TooLarge { len: bytes.len() });
    }
    Ok(bytes)
}

/// Decode one datagram, checking the descriptors that came with it against the message's kind.
pub fn decode<M: Message>(
    bytes: &[u8],
    fds: Vec<OwnedFd>,
) -> Result<(M, Vec<OwnedFd>), ProtocolError> {
    let msg: M =
        serde_json::from_slice(bytes).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    if msg.fds() != fds.len() {
        return Err(ProtocolError::Fds {
            expected: msg.fds(),
            got: fds.len(),
        });
    }
    Ok((msg, fds))
}

/// Send one message with its descriptors.
pub fn send<M: Message>(
    sock: BorrowedFd<'_>,
    msg: &M,
    fds: &[BorrowedFd<'_>],
) -> Result<(), ProtocolError> {
    if msg.fds() != fds.len() {
        return Err(ProtocolError::Fds {
            expected: msg.fds(),
            got: fds.len(),
        });
    }
    let bytes = encode(msg)?;
    sys::send_fds(sock, &bytes, fds).map_err(|errno| ProtocolError::Io {
        call: "sendmsg",
        errno,
    })
}

/// Receive one message: `Ok(None)` when the peer closed its end. With `nonblocking`, no pending
/// message is `Err(Io { errno: EAGAIN })`.
pub fn recv<M: Message>(
    sock: BorrowedFd<'_>,
    nonblocking: bool,
) -> Result<Option<(M, Vec<OwnedFd>)>, ProtocolError> {
    // One byte more than the limit, so an oversized datagram shows as truncated either way.
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    let got = sys::recv_fds(sock, &mut buf, nonblocking).map_err(|errno| ProtocolError::Io {
        call: "recvmsg",
        errno,
    })?;
    if got.truncated || got.len > MAX_MESSAGE {
        return Err(ProtocolError::TooLarge { len: got.len });
    }
    if got.len == 0 && got.fds.is_empty() {
        return Ok(None);
    }
    decode(&buf[..got.len], got.fds).map(Some)
}

/// Send `Up::Exited` without allocating (the init runs it under a seccomp filter that has no
/// memory-management syscalls): the JSON is formatted on the stack and sent with one `write`.
pub fn send_exit(sock: BorrowedFd<'_>, exit: &Exit) {
    let mut buf = StackLine::default();
    let opt = |v: Option<i32>| v.map_or(i64::MIN, i64::from);
    let _ = write!(
        buf,
        "{{\"Exited\":{{\"pid\":{},\"code\":{},\"signal\":{},\"user_us\":{},\"sys_us\":{},\"maxrss\":{}}}}}",
        exit.pid,
        Null(opt(exit.code)),
        Null(opt(exit.signal)),
        exit.user_us,
        exit.sys_us,
        exit.maxrss
    );
    let _ = nix::unistd::write(sock, &buf.buf[..buf.len]);
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

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
