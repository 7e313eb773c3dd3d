//! Who may call what: the rule that configured credentials are always required, and the summary
//! `stockade serve --check-config` prints (listeners with their methods, principals with their
//! grants, keys with their principals).

use std::fmt::Write;

use super::SecurityConfig;
use crate::daemon::security::authn::Methods;
use crate::daemon::security::authz::Grant;
use crate::policy::NetworkMode;
use crate::units::{format_duration, format_size};

fn method_names(m: Methods) -> String {
    let names: Vec<&str> = [
        (m.api_key, "api_key"),
        (m.jwt, "jwt"),
        (m.mtls, "mtls"),
        (m.peer, "peer"),
    ]
    .into_iter()
    .filter_map(|(on, n)| on.then_some(n))
    .collect();
    if names.is_empty() {
        "anonymous (no authentication)".into()
    } else {
        names.join(", ")
    }
}

impl SecurityConfig {
    /// The credential sections configured, as the lines that configure them.
    fn configured_credentials(&self) -> Vec<String> {
        let c = self.credentials;
        [
            (c.api_key, "[[auth.keys]]/keys_file"),
            (c.jwt, "[auth.jwt]"),
            (c.mtls, "[tls] client_ca"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, line)| line.to_string())
        .collect()
    }

    /// Refuse a configuration whose credentials protect nothing: with keys, JWT or client
    /// certificates configured, every listener kind in use must require authentication (keys
    /// nobody has to present are no protection; issue 11 item 8); with named principals, at least
    /// one must (grants for principals nobody can become restrict nothing).
    pub fn check_required(&self, tcp: bool, unix: bool) -> Result<(), String> {
        let kinds = [
            (
                tcp,
                self.auth.tcp,
                "tcp",
                self.methods_given.0,
                "api_key, jwt, mtls",
            ),
            (
                unix,
                self.auth.unix,
                "unix",
                self.methods_given.1,
                "peer, api_key, jwt",
            ),
        ];
        let anonymous = |(used, m, ..): &(bool, Methods, &str, bool, &str)| *used && m.anonymous();
        let credentials = self.configured_credentials();
        let principals: Vec<String> = self
            .grants
            .named()
            .into_iter()
            .map(|(n, _)| format!("[principals.{n}]"))
            .collect();
        let open = if credentials.is_empty() {
            let all_open = kinds.iter().filter(|k| k.0).all(anonymous);
            kinds
                .iter()
                .find(|k| all_open && !principals.is_empty() && anonymous(k))
        } else {
            kinds.iter().find(|k| anonymous(k))
        };
        let Some(&(_, _, line, given, choices)) = open else {
            return Ok(());
        };
        let what = if credentials.is_empty() {
            principals
        } else {
            credentials
        };
        let why = if given {
            format!("`[auth] {line}` lists no method")
        } else {
            format!("`[auth] {line}` is not set and no configured credential works there")
        };
        Err(format!(
            "{} configured, but {why}, so {line} clients would be served anonymously: set `[auth] {line} = [...]` with the methods to require ({choices})",
            what.join(", ")
        ))
    }

    /// The `--check-config` summary of who may call what.
    pub fn describe(&self, listen: &[crate::daemon::config::Listen]) -> String {
        use crate::daemon::config::Listen;
        let mut out = String::from("who may call what:\n");
        for l in listen {
            let (m, given) = match l {
                Listen::Tcp(_) => (self.auth.tcp, self.methods_given.0),
                Listen::Unix { .. } => (self.auth.unix, self.methods_given.1),
            };
            let from = match (given, m.anonymous()) {
                (true, _) => "",
                (false, false) => " (default: the configured credentials)",
                (false, true) => " (default: no credentials are configured)",
            };
            let _ = writeln!(out, "  listener {l}: {}{from}", method_names(m));
        }
        for (name, g) in self.grants.named() {
            let _ = writeln!(out, "  principal {name}: {}", grant_text(g));
        }
        let _ = writeln!(
            out,
            "  everyone else (other principals, anonymous callers): {}",
            grant_text(self.grants.fallback())
        );
        for (id, principal, revoked) in &self.key_owners {
            let state = if *revoked { " (revoked)" } else { "" };
            let _ = writeln!(out, "  api key {id}: principal {principal}{state}");
        }
        if self.credentials.jwt {
            out.push_str("  jwt: principal jwt:<sub> of a verified token\n");
        }
        if self.credentials.mtls {
            out.push_str("  client certificates: principal cert:<CN> of a verified certificate\n");
        }
        out
    }
}

fn grant_text(g: &Grant) -> String {
    let mut parts = vec![match &g.profiles {
        None => "every profile".to_string(),
        Some(p) if p.is_empty() => "no profile".to_string(),
        Some(p) => format!("profiles {}", p.join(", ")),
    }];
    let mut add = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            parts.push(format!("{name} {v}"));
        }
    };
    add("max_wall", g.max_wall.map(format_duration));
    add("max_cpu", g.max_cpu.map(format_duration));
    add("max_memory", g.max_memory.map(format_size));
    add("max_pids", g.max_pids.map(|n| n.to_string()));
    add("max_output", g.max_output.map(format_size));
    add(
        "rate",
        g.rate.map(|r| format!("{}/s burst {}", r.per_sec, r.burst)),
    );
    add("max_concurrent", g.max_concurrent.map(|n| n.to_string()));
    if g.network == NetworkMode::None {
        parts.push("network none".into());
    }
    if g.skip_check {
        parts.push("may skip the pre-flight check".into());
    }
    parts.join("; ")
}
