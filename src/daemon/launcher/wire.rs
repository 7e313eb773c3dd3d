//! The launcher's wire: one typed, versioned encoding for the control socket and every job
//! socket.
//!
//! A frame is `version:u8 tag:u8 len:u32le payload`. The version is checked on every frame, so a
//! launcher and a service from different builds refuse each other cleanly instead of misreading.
//! Every length is bounded before anything is allocated (`MAX_FRAME`, and `MAX_CONTROL` for the
//! control socket's datagrams).
//!
//! - Control socket (service → launcher, `SOCK_SEQPACKET`, one datagram per message, the job
//!   socket attached with `SCM_RIGHTS`): first `Configure` (the cgroup options, once, answered
//!   `Configured` with the detection's error if any: the launcher is forked before the service
//!   reads its configuration, so it never holds the service's secrets), then `Spawn` (fork a
//!   worker for the attached socket); `Warm` and `Take` are reserved for the warm pool and refused
//!   with an `Unsupported` frame on the attached socket.
//! - Job socket, service → worker: `Job` (policy and files), `Stdin` chunks, `CloseStdin`,
//!   `Signal`, `Cancel`.
//! - Job socket, worker → service: `Stdout`/`Stderr` chunks as they come, then exactly one
//!   `Verdict`, or `Unsupported` when the worker cannot do what a frame asks.

use std::io::{Read, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::policy::Policy;
use crate::verdict::Verdict;

/// The wire's version; bump it on any change of a frame's meaning.
pub const VERSION: u8 = 1;
/// Largest frame payload (a job with its files, a verdict with two full output captures).
pub const MAX_FRAME: usize = 256 << 20;
/// Largest control datagram (`Configure`'s cgroup options are the only payload).
pub const MAX_CONTROL: usize = 8192;
/// Bytes of a frame header: version, tag, length.
pub const HEADER: usize = 6;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("read or write on the launcher socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("launcher wire version {got}, expected {VERSION}")]
    Version { got: u8 },
    #[error("unknown launcher frame tag {0:#04x}")]
    Tag(u8),
    #[error("launcher frame of {0} bytes exceeds the limit of {MAX_FRAME}")]
    TooLarge(usize),
    #[error("malformed launcher frame `{tag}`: {why}")]
    Malformed { tag: char, why: String },
    #[error("the peer closed the launcher socket")]
    Closed,
}

/// Control socket messages (service → launcher).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// The launcher's cgroup options; the first message, and only once.
    Configure(crate::cgroup::CgroupOptions),
    /// The launcher's answer to `Configure` (launcher → service): `None` when its limit manager
    /// is ready, or why the configured backend does not work.
    Configured(Option<String>),
    /// Fork a worker for the attached job socket.
    Spawn,
    /// Reserved: start a sandbox that waits for work (the warm pool).
    Warm,
    /// Reserved: hand a warm sandbox to the attached job socket.
    Take,
}

/// Job socket messages, service → worker.
#[derive(Debug, Clone)]
pub enum ToWorker {
    /// The sandbox to run: the fully resolved policy and the files to create beneath it.
    Job {
        policy: Box<Policy>,
        files: Vec<(PathBuf, Vec<u8>)>,
    },
    /// Bytes for the payload's standard input.
    Stdin(Vec<u8>),
    /// End of the payload's standard input.
    CloseStdin,
    /// Deliver a signal to the payload.
    Signal(i32),
    /// Kill the sandbox now; the verdict follows.
    Cancel,
}

/// Job socket messages, worker → service.
#[derive(Debug, Clone)]
pub enum FromWorker {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The last frame of a run.
    Verdict(Box<Verdict>),
    /// A frame the worker (or the launcher) cannot act on, and why.
    Unsupported(String),
}

/// The `Job` frame's header; file contents follow it in the same frame.
#[derive(Serialize, Deserialize)]
struct JobHeader {
    policy: Policy,
    files: Vec<FileHeader>,
}

#[derive(Serialize, Deserialize)]
struct FileHeader {
    path: PathBuf,
    len: usize,
}

fn frame(tag: u8, payload: &[u8]) -> Result<Vec<u8>, WireError> {
    if payload.len() > MAX_FRAME {
        return Err(WireError::TooLarge(payload.len()));
    }
    let len = u32::try_from(payload.len()).map_err(|_| WireError::TooLarge(payload.len()))?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&[VERSION, tag]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

fn malformed(tag: u8, why: impl ToString) -> WireError {
    WireError::Malformed {
        tag: char::from(tag),
        why: why.to_string(),
    }
}

/// The tag and payload length of a frame header, checked.
pub fn header(head: &[u8; HEADER]) -> Result<(u8, usize), WireError> {
    if head[0] != VERSION {
        return Err(WireError::Version { got: head[0] });
    }
    let len = u32::from_le_bytes([head[2], head[3], head[4], head[5]]);
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    Ok((head[1], len))
}

/// One frame found in a buffer.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub tag: u8,
    pub payload: &'a [u8],
    /// Bytes the whole frame took, header included.
    pub len: usize,
}

/// Split one frame off the front of `buf`, or `None` when more bytes are needed.
pub fn split(buf: &[u8]) -> Result<Option<Frame<'_>>, WireError> {
    let Some(head) = buf.first_chunk::<HEADER>() else {
        return Ok(None);
    };
    let (tag, len) = header(head)?;
    Ok(buf.get(HEADER..HEADER + len).map(|payload| Frame {
        tag,
        payload,
        len: HEADER + len,
    }))
}

/// Read one frame from a blocking reader: `(tag, payload)`; `Closed` at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> Result<(u8, Vec<u8>), WireError> {
    let mut head = [0u8; HEADER];
    match r.read_exact(&mut head) {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(WireError::Closed),
        other => other?,
    }
    let (tag, len) = header(&head)?;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok((tag, payload))
}

impl Control {
    pub fn encode(&self) -> Vec<u8> {
        let (tag, payload) = match self {
            Control::Configure(o) => (b'c', serde_json::to_vec(o).unwrap_or_default()),
            Control::Configured(e) => (b'k', serde_json::to_vec(e).unwrap_or_default()),
            Control::Spawn => (b's', Vec::new()),
            Control::Warm => (b'w', Vec::new()),
            Control::Take => (b't', Vec::new()),
        };
        frame(tag, &payload).unwrap_or_default()
    }

    pub fn decode(datagram: &[u8]) -> Result<Control, WireError> {
        if datagram.len() > MAX_CONTROL {
            return Err(WireError::TooLarge(datagram.len()));
        }
        let Some(Frame { tag, payload, .. }) = split(datagram)? else {
            return Err(malformed(
                datagram.get(1).copied().unwrap_or(0),
                "short datagram",
            ));
        };
        let json = |what| malformed(tag, what);
        match tag {
            b'c' => serde_json::from_slice(payload)
                .map(Control::Configure)
                .map_err(|e| json(e.to_string())),
            b'k' => serde_json::from_slice(payload)
                .map(Control::Configured)
                .map_err(|e| json(e.to_string())),
            _ if !payload.is_empty() => Err(malformed(tag, "a control message has no payload")),
            b's' => Ok(Control::Spawn),
            b'w' => Ok(Control::Warm),
            b't' => Ok(Control::Take),
            other => Err(WireError::Tag(other)),
        }
    }
}

impl ToWorker {
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        match self {
            ToWorker::Job { policy, files } => {
                let header = JobHeader {
                    policy: policy.as_ref().clone(),
                    files: files
                        .iter()
                        .map(|(path, data)| FileHeader {
                            path: path.clone(),
                            len: data.len(),
                        })
                        .collect(),
                };
                let json = serde_json::to_vec(&header).map_err(|e| malformed(b'J', e))?;
                let json_len =
                    u32::try_from(json.len()).map_err(|_| WireError::TooLarge(json.len()))?;
                let mut payload = json_len.to_le_bytes().to_vec();
                payload.extend_from_slice(&json);
                for (_, data) in files {
                    payload.extend_from_slice(data);
                }
                frame(b'J', &payload)
            }
            ToWorker::Stdin(data) => frame(b'I', data),
            ToWorker::CloseStdin => frame(b'C', &[]),
            ToWorker::Signal(n) => frame(b'S', &n.to_le_bytes()),
            ToWorker::Cancel => frame(b'X', &[]),
        }
    }

    pub fn decode(tag: u8, payload: &[u8]) -> Result<ToWorker, WireError> {
        match tag {
            b'J' => decode_job(payload),
            b'I' => Ok(ToWorker::Stdin(payload.to_vec())),
            b'C' => empty(tag, payload, ToWorker::CloseStdin),
            b'S' => {
                let bytes: [u8; 4] = payload
                    .try_into()
                    .map_err(|_| malformed(tag, "a signal is 4 bytes"))?;
                Ok(ToWorker::Signal(i32::from_le_bytes(bytes)))
            }
            b'X' => empty(tag, payload, ToWorker::Cancel),
            other => Err(WireError::Tag(other)),
        }
    }
}

fn empty<T>(tag: u8, payload: &[u8], value: T) -> Result<T, WireError> {
    if payload.is_empty() {
        Ok(value)
    } else {
        Err(malformed(tag, "no payload expected"))
    }
}

fn decode_job(payload: &[u8]) -> Result<ToWorker, WireError> {
    let bad = |why: &str| malformed(b'J', why);
    let (len, rest) = payload
        .split_first_chunk::<4>()
        .ok_or_else(|| bad("no header length"))?;
    let json_len = usize::try_from(u32::from_le_bytes(*len)).map_err(|_| bad("header length"))?;
    let json = rest
        .get(..json_len)
        .ok_or_else(|| bad("header cut short"))?;
    let header: JobHeader = serde_json::from_slice(json).map_err(|e| malformed(b'J', e))?;
    let mut data = rest.get(json_len..).unwrap_or_default();
    let mut files = Vec::with_capacity(header.files.len().min(data.len() + 1));
    for f in header.files {
        // Bounded by the frame: a length past its end is refused, never allocated.
        let (contents, more) = data
            .split_at_checked(f.len)
            .ok_or_else(|| bad("file contents cut short"))?;
        files.push((f.path, contents.to_vec()));
        data = more;
    }
    if !data.is_empty() {
        return Err(bad("bytes after the last file"));
    }
    Ok(ToWorker::Job {
        policy: Box::new(header.policy),
        files,
    })
}

impl FromWorker {
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        match self {
            FromWorker::Stdout(b) => frame(b'o', b),
            FromWorker::Stderr(b) => frame(b'e', b),
            FromWorker::Verdict(v) => {
                let json = serde_json::to_vec(v).map_err(|e| malformed(b'v', e))?;
                frame(b'v', &json)
            }
            FromWorker::Unsupported(why) => frame(b'u', why.as_bytes()),
        }
    }

    pub fn decode(tag: u8, payload: &[u8]) -> Result<FromWorker, WireError> {
        match tag {
            b'o' => Ok(FromWorker::Stdout(payload.to_vec())),
            b'e' => Ok(FromWorker::Stderr(payload.to_vec())),
            b'v' => serde_json::from_slice(payload)
                .map(|v| FromWorker::Verdict(Box::new(v)))
                .map_err(|e| malformed(tag, e)),
            b'u' => Ok(FromWorker::Unsupported(
                String::from_utf8_lossy(payload).into_owned(),
            )),
            other => Err(WireError::Tag(other)),
        }
    }

    /// Write this message as one frame.
    pub fn write_to(&self, w: &mut impl Write) -> Result<(), WireError> {
        w.write_all(&self.encode()?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Status;

    fn round_trip(m: ToWorker) {
        let bytes = m.encode().unwrap();
        let Frame { tag, payload, len } = split(&bytes).unwrap().unwrap();
        assert_eq!(len, bytes.len());
        let same = |d: ToWorker| assert_eq!(format!("{d:?}"), format!("{m:?}"));
        same(ToWorker::decode(tag, payload).unwrap());
        // The blocking reader sees the same frame.
        let (tag, payload) = read_frame(&mut bytes.as_slice()).unwrap();
        same(ToWorker::decode(tag, &payload).unwrap());
    }

    #[test]
    fn service_to_worker_messages_round_trip() {
        let mut policy = Policy::default();
        policy.argv = vec!["python3".into(), "main.py".into()];
        round_trip(ToWorker::Job {
            policy: Box::new(policy),
            files: vec![
                ("/sandbox/main.py".into(), b"print(1)".to_vec()),
                ("/sandbox/empty".into(), Vec::new()),
                ("/sandbox/bin".into(), vec![0, 255, 10]),
            ],
        });
        round_trip(ToWorker::Stdin(b"line\n".to_vec()));
        round_trip(ToWorker::CloseStdin);
        round_trip(ToWorker::Signal(libc::SIGTERM));
        round_trip(ToWorker::Cancel);
    }

    #[test]
    fn worker_to_service_messages_round_trip() {
        let v = Verdict::not_started(Status::Oom, Default::default(), "m".into());
        for m in [
            FromWorker::Stdout(b"out".to_vec()),
            FromWorker::Stderr(vec![0xff]),
            FromWorker::Verdict(Box::new(v)),
            FromWorker::Unsupported("no".into()),
        ] {
            let bytes = m.encode().unwrap();
            let Frame { tag, payload, .. } = split(&bytes).unwrap().unwrap();
            let back = FromWorker::decode(tag, payload).unwrap();
            assert_eq!(format!("{back:?}"), format!("{m:?}"));
        }
    }

    #[test]
    fn control_messages_round_trip_and_reserved_ones_decode() {
        for c in [Control::Spawn, Control::Warm, Control::Take] {
            assert_eq!(Control::decode(&c.encode()).unwrap(), c);
        }
        assert!(matches!(
            Control::decode(b"\x01q\0\0\0\0"),
            Err(WireError::Tag(b'q'))
        ));
        assert!(Control::decode(&[VERSION]).is_err());
    }

    #[test]
    fn other_versions_unknown_tags_and_huge_lengths_are_refused() {
        let mut bytes = ToWorker::Cancel.encode().unwrap();
        bytes[0] = VERSION + 1;
        assert!(matches!(split(&bytes), Err(WireError::Version { got }) if got == VERSION + 1));
        assert!(matches!(
            ToWorker::decode(b'?', &[]),
            Err(WireError::Tag(b'?'))
        ));
        // A length beyond the limit is refused from the header, before any allocation.
        let mut huge = vec![VERSION, b'I'];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(split(&huge), Err(WireError::TooLarge(_))));
        assert!(matches!(
            read_frame(&mut huge.as_slice()),
            Err(WireError::TooLarge(_))
        ));
        // A frame cut short needs more bytes; a stream that ends is closed.
        let full = ToWorker::Stdin(b"abc".to_vec()).encode().unwrap();
        assert!(split(&full[..full.len() - 1]).unwrap().is_none());
        assert!(matches!(read_frame(&mut &[][..]), Err(WireError::Closed)));
        assert!(matches!(
            ToWorker::decode(b'S', &[1, 2]),
            Err(WireError::Malformed { .. })
        ));
        assert!(matches!(
            ToWorker::decode(b'X', &[1]),
            Err(WireError::Malformed { .. })
        ));
    }

    #[test]
    fn job_frames_with_lying_lengths_are_refused() {
        let job = ToWorker::Job {
            policy: Box::new(Policy::default()),
            files: vec![("/sandbox/a".into(), b"abc".to_vec())],
        };
        let bytes = job.encode().unwrap();
        let Frame { tag, payload, .. } = split(&bytes).unwrap().unwrap();
        // Contents cut short: the header promises more than the frame holds.
        let short = &payload[..payload.len() - 1];
        assert!(matches!(
            ToWorker::decode(tag, short),
            Err(WireError::Malformed { .. })
        ));
        // Bytes left over after the last file.
        let mut long = payload.to_vec();
        long.push(0);
        assert!(matches!(
            ToWorker::decode(tag, &long),
            Err(WireError::Malformed { .. })
        ));
        // A header length past the end.
        let mut bad = payload.to_vec();
        bad[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            ToWorker::decode(tag, &bad),
            Err(WireError::Malformed { .. })
        ));
    }
}
