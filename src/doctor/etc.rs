//! The `etc` line: what of the `/etc` allowlist (`fs::host_etc`) this host has, what it should
//! have and lacks, and which links would dangle inside a `host`-root sandbox.
//!
//! `probe` reads the host (one listing of `/etc`, a few `lstat`s, and a bounded walk of the
//! directories whose links lead into `/etc`); `check` is a pure function of the facts.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::classify::{Impact, check as line, mark};
use super::{Check, Facts, ProfileReport, Status};
use crate::fs::host_etc::{self, ALLOWED, Expect};

/// What the host's `/etc` gives a `host`-root sandbox.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EtcFacts {
    /// Allowlisted entries present (what the sandbox sees of `/etc`, besides the generated files).
    pub present: Vec<String>,
    /// Allowlisted entries this host should have (every glibc system, or because the toolchain
    /// that reads them is installed) but lacks.
    pub missing: Vec<EtcMissing>,
    /// Links that work on the host but would dangle in the sandbox, as `link -> target`: their
    /// target is outside `/usr` and the allowlist.
    pub dangling: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EtcMissing {
    /// The allowlist entry, relative to `/etc`.
    pub name: String,
    /// Who reads it.
    pub why: String,
    /// The installed path that makes it expected, `None` for entries every system has.
    pub expected_with: Option<String>,
}

/// Directories whose symlinks commonly lead into `/etc`: the sandbox's `PATH` and the JDKs.
const LINK_DIRS: &[&str] = &["/usr/local/bin", "/usr/bin", "/usr/sbin", "/usr/lib/jvm"];
/// How deep below a [`LINK_DIRS`] entry, or an allowlisted `/etc` directory, links are looked at.
const LINK_DEPTH: usize = 4;
/// Most directory entries looked at in total, so a huge `/usr` cannot make doctor slow.
const WALK_MAX: usize = 50_000;
/// Most dangling links listed.
const DANGLING_MAX: usize = 20;

/// Probe the host's `/etc` (`etc`) against the allowlist; `root` is the host root the
/// `Expect::With` paths are relative to (`/` outside tests).
pub fn probe(root: &Path, etc: &Path) -> EtcFacts {
    let present: Vec<String> = host_etc::discover(etc)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let mut missing = Vec::new();
    for rule in ALLOWED {
        let with = match rule.expect {
            Expect::Always => None,
            Expect::With(path) => Some(path),
            Expect::Optional => continue,
        };
        if with.is_some_and(|p| !root.join(p.trim_start_matches('/')).exists()) {
            continue;
        }
        let found = present
            .iter()
            .any(|n| host_etc::rule_for(n).is_some_and(|r| r.name == rule.name));
        if !found {
            missing.push(EtcMissing {
                name: rule.name.to_string(),
                why: rule.why.to_string(),
                expected_with: with.map(str::to_string),
            });
        }
    }
    let mut walk = Walk {
        root: root.to_path_buf(),
        present: &present,
        seen: 0,
        dangling: Vec::new(),
    };
    for dir in LINK_DIRS {
        walk.dir(Path::new(dir), LINK_DEPTH);
    }
    for name in &present {
        walk.dir(&Path::new("/etc").join(name), LINK_DEPTH);
    }
    let dangling = walk.dangling;
    EtcFacts {
        present,
        missing,
        dangling,
    }
}

/// A bounded walk that collects links whose target the sandbox would not have.
struct Walk<'a> {
    root: PathBuf,
    present: &'a [String],
    seen: usize,
    dangling: Vec<String>,
}

impl Walk<'_> {
    /// `dir` is an absolute path as the sandbox sees it; it is read under `self.root`.
    fn dir(&mut self, dir: &Path, depth: usize) {
        let host = self.root.join(dir.strip_prefix("/").unwrap_or(dir));
        let Ok(entries) = std::fs::read_dir(&host) else {
            return;
        };
        for entry in entries.flatten() {
            self.seen += 1;
            if self.seen > WALK_MAX || self.dangling.len() >= DANGLING_MAX {
                return;
            }
            let path = dir.join(entry.file_name());
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() && depth > 1 {
                self.dir(&path, depth - 1);
            } else if kind.is_symlink() {
                self.link(&path, &entry.path());
            }
        }
    }

    fn link(&mut self, path: &Path, host: &Path) {
        let Ok(target) = std::fs::read_link(host) else {
            return;
        };
        let resolved = host_etc::lexical_target(path, &target);
        // Broken on the host too: not the sandbox's doing.
        let works_on_host = std::fs::metadata(host).is_ok();
        if works_on_host && !host_etc::visible_in_sandbox(&resolved, self.present) {
            self.dangling
                .push(format!("{} -> {}", path.display(), target.display()));
        }
    }
}

/// The `etc` line, and the profiles whose command is a dangling link.
pub(super) fn check(f: &Facts, profiles: &mut [ProfileReport]) -> Check {
    let e = &f.etc;
    let affects = mark(profiles, f, "etc", |p| {
        let cmd = p.command.as_deref()?;
        let link = e.dangling.iter().find(|d| {
            let name = d.split(" -> ").next().unwrap_or("");
            Path::new(name).file_name().is_some_and(|n| n == cmd)
        })?;
        (p.rootfs == "host").then(|| {
            Impact::Blocks(format!(
                "`{cmd}` is a link the sandbox cannot follow: {link}"
            ))
        })
    });
    let detail = format!(
        "allowlisted and present: {}",
        match e.present.is_empty() {
            true => "none".to_string(),
            false => e.present.join(", "),
        }
    );
    if e.missing.is_empty() && e.dangling.is_empty() {
        return line(
            "etc",
            Status::Ok,
            format!(
                "the sandbox's /etc has the {} allowlisted entries this host provides, and every \
                 link into it resolves",
                e.present.len()
            ),
            detail,
            None,
            affects,
        );
    }
    let mut problems = Vec::new();
    if !e.missing.is_empty() {
        let names: Vec<String> = e.missing.iter().map(describe).collect();
        problems.push(format!("missing on this host: {}", names.join("; ")));
    }
    if !e.dangling.is_empty() {
        problems.push(format!(
            "links that would dangle in the sandbox: {}",
            e.dangling.join(", ")
        ));
    }
    line(
        "etc",
        Status::Degraded,
        problems.join("; "),
        detail,
        Some(
            "install what provides a missing entry (ca-certificates for ssl/certs, tzdata for \
             localtime, fontconfig-config for fonts, the JDK's headless package for java-*), or \
             run such programs from a built root filesystem (docs/rootfs.md); bind the target of \
             a dangling link with [[rootfs.mounts]] in the profile"
                .into(),
        ),
        affects,
    )
}

fn describe(m: &EtcMissing) -> String {
    match &m.expected_with {
        Some(with) => format!(
            "/etc/{} ({}; expected because {with} exists)",
            m.name, m.why
        ),
        None => format!("/etc/{} ({})", m.name, m.why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::ProfileNeeds;

    fn host() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for d in [
            "etc/alternatives",
            "etc/ssl/certs",
            "usr/bin",
            "usr/lib/jvm/jdk/bin",
            "usr/lib/jvm/jdk/conf",
            "usr/share/fonts",
            "opt/tool",
            "etc/maven",
        ] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        for f in [
            "etc/ld.so.cache",
            "usr/lib/jvm/jdk/bin/java",
            "opt/tool/run",
            "etc/maven/m2.conf",
        ] {
            std::fs::write(r.join(f), "x").unwrap();
        }
        let link = |target: &str, at: &str| std::os::unix::fs::symlink(target, r.join(at)).unwrap();
        link("../../usr/lib/jvm/jdk/bin/java", "etc/alternatives/java");
        link("../../etc/alternatives/java", "usr/bin/java");
        // Out of the sandbox's reach: /opt, and /etc/maven (not allowlisted).
        link("../../opt/tool/run", "usr/bin/tool");
        link(
            "../../../../../etc/maven/m2.conf",
            "usr/lib/jvm/jdk/conf/m2.conf",
        );
        // Broken on the host too: not reported.
        link("/nowhere", "usr/bin/broken");
        dir
    }

    #[test]
    fn probe_reports_missing_expected_entries_and_links_that_would_dangle() {
        let dir = host();
        let f = probe(dir.path(), &dir.path().join("etc"));
        assert!(f.present.contains(&"alternatives".to_string()));
        assert!(f.present.contains(&"ssl/certs".to_string()));
        let missing: Vec<&str> = f.missing.iter().map(|m| m.name.as_str()).collect();
        // Every glibc host has these; the JDK and fonts are installed, so their /etc is expected.
        for name in ["nsswitch.conf", "ssl/openssl.cnf", "java-*", "fonts"] {
            assert!(missing.contains(&name), "{name} not reported: {missing:?}");
        }
        // R is not installed, and php is optional: neither is expected.
        assert!(!missing.contains(&"R") && !missing.contains(&"php"));
        assert!(!missing.contains(&"ld.so.cache") && !missing.contains(&"alternatives"));
        let mut dangling = f.dangling.clone();
        dangling.sort();
        assert_eq!(
            dangling,
            [
                "/usr/bin/tool -> ../../opt/tool/run",
                "/usr/lib/jvm/jdk/conf/m2.conf -> ../../../../../etc/maven/m2.conf",
            ]
        );
    }

    #[test]
    fn a_dangling_command_blocks_its_profile_and_degrades_the_line() {
        let mut f = Facts::default();
        f.profiles = vec![
            ProfileNeeds {
                name: "tool".into(),
                command: Some("tool".into()),
                rootfs: "host".into(),
                ..ProfileNeeds::default()
            },
            ProfileNeeds {
                name: "python".into(),
                command: Some("python3".into()),
                rootfs: "host".into(),
                ..ProfileNeeds::default()
            },
        ];
        f.etc.dangling = vec!["/usr/bin/tool -> /opt/tool/run".into()];
        let mut reports: Vec<ProfileReport> = f
            .profiles
            .iter()
            .map(|n| ProfileReport {
                name: n.name.clone(),
                command: n.command.clone(),
                runs: true,
                blocked_by: Vec::new(),
                weaker: Vec::new(),
            })
            .collect();
        let c = check(&f, &mut reports);
        assert_eq!(c.status, Status::Degraded);
        assert_eq!(c.affects, ["tool"]);
        assert!(
            c.summary.contains("/usr/bin/tool -> /opt/tool/run"),
            "{}",
            c.summary
        );
        assert!(c.fix.as_deref().unwrap().contains("rootfs.mounts"));
        f.etc.dangling.clear();
        f.etc.present = vec!["ld.so.cache".into()];
        let c = check(&f, &mut reports);
        assert_eq!((c.status, c.fix.is_none()), (Status::Ok, true));
    }
}
