//! Prometheus metrics in the text exposition format (version 0.0.4), kept by hand: a few
//! counters, gauges and histograms need no client library.
//!
//! Label values come from closed sets (route templates, status codes, verdict statuses, refusal
//! reasons), so the series count is bounded whatever clients send.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histograms: a sandboxed `print(1)` takes ~20-40 ms,
/// timeouts take seconds.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96,
];

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}",
                self.counts[i]
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), self.count);
    }
}

/// Gauges the server reads from elsewhere when rendering.
#[derive(Debug, Clone, Copy)]
pub struct Gauges {
    pub queued: usize,
    pub running: usize,
    pub max_concurrent: usize,
    pub queue_size: usize,
    pub launcher_up: bool,
    pub draining: bool,
}

#[derive(Debug, Default)]
pub struct Metrics {
    /// (route template, HTTP status) → count.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// Route template → request latency.
    request_seconds: Mutex<BTreeMap<String, Histogram>>,
    /// Verdict status → count.
    verdicts: Mutex<BTreeMap<&'static str, u64>>,
    /// Refusal reason (queue_full, queue_timeout, draining, unavailable) → count.
    refused: Mutex<BTreeMap<&'static str, u64>>,
    queue_wait: Mutex<Histogram>,
    sandbox_seconds: Mutex<Histogram>,
    /// Sandboxes killed because their client went away.
    disconnects: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding a metrics lock leaves consistent-enough counters; keep serving.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Metrics {
    pub fn request(&self, route: &str, status: u16, elapsed: Duration) {
        *lock(&self.requests)
            .entry((route.to_string(), status))
            .or_default() += 1;
        lock(&self.request_seconds)
            .entry(route.to_string())
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    pub fn verdict(&self, status: &'static str, sandbox_time: Duration) {
        *lock(&self.verdicts).entry(status).or_default() += 1;
        lock(&self.sandbox_seconds).observe(sandbox_time.as_secs_f64());
    }

    pub fn refused(&self, reason: &'static str) {
        *lock(&self.refused).entry(reason).or_default() += 1;
    }

    pub fn queue_wait(&self, waited: Duration) {
        lock(&self.queue_wait).observe(waited.as_secs_f64());
    }

    pub fn disconnect(&self) {
        self.disconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self, g: Gauges) -> String {
        let mut out = String::with_capacity(8192);
        let gauge = |out: &mut String, name: &str, help: &str, value: usize| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        gauge(
            &mut out,
            "stockade_sandboxes_running",
            "Sandboxes running now.",
            g.running,
        );
        gauge(
            &mut out,
            "stockade_sandboxes_max",
            "Sandboxes allowed at once.",
            g.max_concurrent,
        );
        gauge(
            &mut out,
            "stockade_queue_depth",
            "Requests waiting for a sandbox slot.",
            g.queued,
        );
        gauge(
            &mut out,
            "stockade_queue_capacity",
            "Requests allowed to wait.",
            g.queue_size,
        );
        gauge(
            &mut out,
            "stockade_launcher_up",
            "1 when the sandbox launcher is alive.",
            usize::from(g.launcher_up),
        );
        gauge(
            &mut out,
            "stockade_draining",
            "1 while shutting down.",
            usize::from(g.draining),
        );

        out.push_str("# HELP stockade_http_requests_total HTTP requests answered, by route and status.\n# TYPE stockade_http_requests_total counter\n");
        for ((route, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "stockade_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        out.push_str("# HELP stockade_http_request_duration_seconds Time to answer, by route.\n# TYPE stockade_http_request_duration_seconds histogram\n");
        for (route, h) in lock(&self.request_seconds).iter() {
            let labels = format!("route=\"{}\"", escape(route));
            h.render(&mut out, "stockade_http_request_duration_seconds", &labels);
        }
        out.push_str("# HELP stockade_verdicts_total Finished runs, by verdict status.\n# TYPE stockade_verdicts_total counter\n");
        for (status, n) in lock(&self.verdicts).iter() {
            let _ = writeln!(out, "stockade_verdicts_total{{status=\"{status}\"}} {n}");
        }
        out.push_str("# HELP stockade_requests_refused_total Requests refused before running, by reason.\n# TYPE stockade_requests_refused_total counter\n");
        for (reason, n) in lock(&self.refused).iter() {
            let _ = writeln!(
                out,
                "stockade_requests_refused_total{{reason=\"{reason}\"}} {n}"
            );
        }
        out.push_str("# HELP stockade_client_disconnects_total Runs killed because the client went away.\n# TYPE stockade_client_disconnects_total counter\n");
        let _ = writeln!(
            out,
            "stockade_client_disconnects_total {}",
            self.disconnects.load(Ordering::Relaxed)
        );
        out.push_str("# HELP stockade_queue_wait_seconds Time waited for a sandbox slot.\n# TYPE stockade_queue_wait_seconds histogram\n");
        lock(&self.queue_wait).render(&mut out, "stockade_queue_wait_seconds", "");
        out.push_str("# HELP stockade_sandbox_duration_seconds Sandbox lifetime from spawn to verdict.\n# TYPE stockade_sandbox_duration_seconds histogram\n");
        lock(&self.sandbox_seconds).render(&mut out, "stockade_sandbox_duration_seconds", "");
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_counters_gauges_and_cumulative_buckets() {
        let m = Metrics::default();
        m.request("/v1/execute", 200, Duration::from_millis(30));
        m.request("/v1/execute", 200, Duration::from_millis(3));
        m.verdict("ok", Duration::from_millis(25));
        m.refused("queue_full");
        let text = m.render(Gauges {
            queued: 2,
            running: 1,
            max_concurrent: 4,
            queue_size: 8,
            launcher_up: true,
            draining: false,
        });
        assert!(
            text.contains("stockade_http_requests_total{route=\"/v1/execute\",status=\"200\"} 2")
        );
        assert!(text.contains(
            "stockade_http_request_duration_seconds_bucket{route=\"/v1/execute\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "stockade_http_request_duration_seconds_bucket{route=\"/v1/execute\",le=\"0.04\"} 2"
        ));
        assert!(text.contains("stockade_verdicts_total{status=\"ok\"} 1"));
        assert!(text.contains("stockade_requests_refused_total{reason=\"queue_full\"} 1"));
        assert!(text.contains("stockade_queue_depth 2"));
        assert!(text.contains("stockade_sandbox_duration_seconds_count 1"));
        assert!(text.contains("stockade_queue_wait_seconds_bucket{le=\"+Inf\"} 0"));
    }
}
