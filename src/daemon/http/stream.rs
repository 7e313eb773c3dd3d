//! Streamed execution: NDJSON (`application/x-ndjson`) or server-sent events
//! (`text/event-stream`). Events in order: `start`, then `stdout`/`stderr` chunks as the payload
//! writes them, then `end` with the verdict (or `error` when the run could not finish).
//!
//! Chunks are UTF-8 text, or base64 (`"encoding":"base64"`) when the bytes are not valid UTF-8; a
//! multi-byte character split across two reads is held back and sent whole with the next chunk.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use futures_util::stream;
use serde::Serialize;

use crate::daemon::engine::{EngineError, Event, Run};
use crate::verdict::Verdict;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Sse,
}

impl Format {
    /// The streaming format an `Accept` header asks for, if any.
    pub fn from_accept(accept: &str) -> Option<Format> {
        let types = accept
            .split(',')
            .map(|t| t.split(';').next().unwrap_or("").trim());
        for t in types {
            match t {
                "application/x-ndjson" | "application/jsonl" => return Some(Format::Ndjson),
                "text/event-stream" => return Some(Format::Sse),
                _ => {}
            }
        }
        None
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Ndjson => "application/x-ndjson",
            Format::Sse => "text/event-stream",
        }
    }

    /// One event on the wire.
    fn frame(self, event: &Ev<'_>, out: &mut Vec<u8>) {
        // Serializing these plain structs cannot fail.
        let text = serde_json::to_string(event).unwrap_or_default();
        match self {
            Format::Ndjson => {
                out.extend_from_slice(text.as_bytes());
                out.push(b'\n');
            }
            Format::Sse => {
                let name = event.name();
                out.extend_from_slice(format!("event: {name}\ndata: {text}\n\n").as_bytes());
            }
        }
    }
}

/// The events of a stream, each serialized with its `event` name first.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum Ev<'a> {
    Start {
        request_id: &'a str,
        profile: &'a str,
    },
    Stdout {
        data: &'a str,
        encoding: &'a str,
    },
    Stderr {
        data: &'a str,
        encoding: &'a str,
    },
    End {
        verdict: VerdictOut<'a>,
    },
    Error {
        code: &'a str,
        message: &'a str,
    },
}

impl Ev<'_> {
    fn name(&self) -> &'static str {
        match self {
            Ev::Start { .. } => "start",
            Ev::Stdout { .. } => "stdout",
            Ev::Stderr { .. } => "stderr",
            Ev::End { .. } => "end",
            Ev::Error { .. } => "error",
        }
    }
}

/// Splits a byte stream into UTF-8 text pieces, holding back an incomplete trailing character.
#[derive(Debug, Default)]
pub struct Utf8Carry {
    pending: Vec<u8>,
}

impl Utf8Carry {
    /// The piece to send for `chunk`: `(data, encoding)`, or `None` when everything is held back.
    pub fn push(&mut self, chunk: &[u8]) -> Option<(String, &'static str)> {
        self.pending.extend_from_slice(chunk);
        let buf = std::mem::take(&mut self.pending);
        match std::str::from_utf8(&buf) {
            Ok("") => None,
            Ok(s) => Some((s.to_string(), "utf-8")),
            Err(e) if e.error_len().is_none() => {
                // Only an incomplete character at the end: send the rest, keep the tail (≤ 3 bytes).
                let (text, tail) = buf.split_at(e.valid_up_to());
                self.pending = tail.to_vec();
                let text = std::str::from_utf8(text).unwrap_or_default();
                (!text.is_empty()).then(|| (text.to_string(), "utf-8"))
            }
            Err(_) => Some((base64(&buf), "base64")),
        }
    }

    /// Whatever is still held back at the end of the stream (never valid UTF-8 on its own).
    pub fn finish(&mut self) -> Option<(String, &'static str)> {
        let rest = std::mem::take(&mut self.pending);
        (!rest.is_empty()).then(|| (base64(&rest), "base64"))
    }
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The verdict as the native API returns it: request id and profile, then the verdict's fields
/// in their documented order.
#[derive(Debug, Serialize)]
pub struct VerdictOut<'a> {
    pub request_id: &'a str,
    pub profile: &'a str,
    #[serde(flatten)]
    pub verdict: &'a Verdict,
}

struct Live {
    format: Format,
    running: Run,
    stdout: Utf8Carry,
    stderr: Utf8Carry,
    request_id: String,
    profile: String,
}

enum State {
    Live(Box<Live>),
    Done,
}

/// The body of a streamed run. Dropping it (the client went away) drops `running`, which kills
/// the sandbox.
pub fn body(format: Format, running: Run, request_id: &str, profile: &str) -> Body {
    let mut first = Vec::new();
    format.frame(
        &Ev::Start {
            request_id,
            profile,
        },
        &mut first,
    );
    let live = Live {
        format,
        running,
        stdout: Utf8Carry::default(),
        stderr: Utf8Carry::default(),
        request_id: request_id.to_string(),
        profile: profile.to_string(),
    };
    let head = stream::once(async move { Ok::<Bytes, Infallible>(Bytes::from(first)) });
    let rest = stream::unfold(State::Live(Box::new(live)), step);
    Body::from_stream(futures_util::StreamExt::chain(head, rest))
}

/// Produce the next non-empty piece of the stream.
async fn step(state: State) -> Option<(Result<Bytes, Infallible>, State)> {
    let State::Live(mut live) = state else {
        return None;
    };
    let mut out = Vec::new();
    loop {
        match live.running.next().await {
            Ok(Some(Event::Stdout(b))) => {
                if let Some(piece) = live.stdout.push(&b) {
                    live.format.frame(&chunk("stdout", &piece), &mut out);
                }
            }
            Ok(Some(Event::Stderr(b))) => {
                if let Some(piece) = live.stderr.push(&b) {
                    live.format.frame(&chunk("stderr", &piece), &mut out);
                }
            }
            Ok(Some(Event::Finished(v))) => {
                for (name, carry) in [("stdout", &mut live.stdout), ("stderr", &mut live.stderr)] {
                    if let Some(piece) = carry.finish() {
                        live.format.frame(&chunk(name, &piece), &mut out);
                    }
                }
                let verdict = VerdictOut {
                    request_id: &live.request_id,
                    profile: &live.profile,
                    verdict: &v,
                };
                live.format.frame(&Ev::End { verdict }, &mut out);
                return Some((Ok(Bytes::from(out)), State::Done));
            }
            Ok(None) => return None,
            Err(e) => {
                error_frame(live.format, &e, &mut out);
                return Some((Ok(Bytes::from(out)), State::Done));
            }
        }
        if !out.is_empty() {
            return Some((Ok(Bytes::from(out)), State::Live(live)));
        }
    }
}

fn chunk<'a>(stream: &str, (data, encoding): &'a (String, &'static str)) -> Ev<'a> {
    match stream {
        "stdout" => Ev::Stdout { data, encoding },
        _ => Ev::Stderr { data, encoding },
    }
}

fn error_frame(format: Format, e: &EngineError, out: &mut Vec<u8>) {
    let ev = Ev::Error {
        code: e.kind.as_str(),
        message: &e.message,
    };
    format.frame(&ev, out);
}

/// A stream for a request refused before it ran (the pre-flight analysis): start, then end.
pub fn refused_body(format: Format, request_id: &str, profile: &str, verdict: &Verdict) -> Body {
    let mut out = Vec::new();
    format.frame(
        &Ev::Start {
            request_id,
            profile,
        },
        &mut out,
    );
    let verdict = VerdictOut {
        request_id,
        profile,
        verdict,
    };
    format.frame(&Ev::End { verdict }, &mut out);
    Body::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_pick_the_format() {
        assert_eq!(
            Format::from_accept("application/x-ndjson"),
            Some(Format::Ndjson)
        );
        assert_eq!(
            Format::from_accept("text/html, text/event-stream;q=0.9"),
            Some(Format::Sse)
        );
        assert_eq!(Format::from_accept("application/json"), None);
        assert_eq!(Format::from_accept("*/*"), None);
    }

    #[test]
    fn split_characters_are_sent_whole() {
        let mut c = Utf8Carry::default();
        let euro = "€".as_bytes();
        assert_eq!(c.push(&[b'a', euro[0]]), Some(("a".into(), "utf-8")));
        assert_eq!(c.push(&euro[1..2]), None);
        assert_eq!(c.push(&[euro[2], b'b']), Some(("€b".into(), "utf-8")));
        assert_eq!(c.finish(), None);
        assert_eq!(c.push(&[0xff, b'x']), Some(("/3g=".into(), "base64")));
        assert_eq!(c.push(&[0xe2]), None);
        assert_eq!(c.finish(), Some(("4g==".into(), "base64")));
    }

    #[test]
    fn frames_are_lines_or_sse_events() {
        let mut out = Vec::new();
        let start = Ev::Start {
            request_id: "r",
            profile: "p",
        };
        Format::Ndjson.frame(&start, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "{\"event\":\"start\",\"request_id\":\"r\",\"profile\":\"p\"}\n"
        );
        out.clear();
        let err = Ev::Error {
            code: "c",
            message: "m",
        };
        Format::Sse.frame(&err, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "event: error\ndata: {\"event\":\"error\",\"code\":\"c\",\"message\":\"m\"}\n\n"
        );
    }
}
