//! A fake cgroupfs in a tempdir that behaves like the kernel where the manager depends on it:
//! `mkdir` creates the interface files, `rmdir` fails with `EBUSY` while `cgroup.procs` lists a
//! member, writes need an existing file, `cgroup.procs` moves a pid, `cgroup.kill` empties the
//! group, `cgroup.subtree_control` obeys the no-internal-process rule. Every write is logged, and
//! errors can be injected per operation and path.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::sys::signal::Signal;

use super::fsops::CgFs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    Mkdir,
    Rmdir,
    Write,
}

#[derive(Debug, Default)]
pub(crate) struct FakeFs {
    /// The tempdir; logs show paths relative to it.
    pub root: PathBuf,
    /// `(relative path, value)` of every successful write, in order.
    pub writes: Mutex<Vec<(String, String)>>,
    /// Injected failures: an operation on a path containing the text fails (until cleared).
    pub fail: Mutex<HashMap<(Op, String), Errno>>,
    /// Directories the "user" may not write.
    pub readonly: Mutex<HashSet<PathBuf>>,
    pub signals: Mutex<Vec<(i32, Signal)>>,
}

/// Interface files of a cgroup2 directory: the core ones, and those of each controller enabled
/// in the parent's `cgroup.subtree_control` (cgroup-v2.rst).
fn v2_files(parent_subtree: &str) -> Vec<(&'static str, String)> {
    let mut files = vec![
        ("cgroup.procs", String::new()),
        ("cgroup.events", "populated 0\nfrozen 0\n".into()),
        ("cgroup.kill", String::new()),
        ("cgroup.freeze", "0\n".into()),
        ("cgroup.type", "domain\n".into()),
        ("cgroup.controllers", format!("{}\n", parent_subtree.trim())),
        ("cgroup.subtree_control", "\n".into()),
        (
            "cpu.stat",
            "usage_usec 0\nuser_usec 0\nsystem_usec 0\n".into(),
        ),
    ];
    for c in parent_subtree.split_whitespace() {
        match c {
            "memory" => files.extend([
                ("memory.max", "max\n".into()),
                ("memory.swap.max", "max\n".into()),
                ("memory.oom.group", "0\n".into()),
                ("memory.peak", "0\n".into()),
                (
                    "memory.events",
                    "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n".into(),
                ),
            ]),
            "pids" => files.extend([
                ("pids.max", "max\n".into()),
                ("pids.peak", "0\n".into()),
                ("pids.events", "max 0\n".into()),
            ]),
            "cpu" => files.push(("cpu.max", "max 100000\n".into())),
            _ => {}
        }
    }
    files
}

impl FakeFs {
    pub fn new(root: &Path) -> FakeFs {
        FakeFs {
            root: root.to_path_buf(),
            ..FakeFs::default()
        }
    }

    pub fn inject(&self, op: Op, path_part: &str, e: Errno) {
        self.fail
            .lock()
            .unwrap()
            .insert((op, path_part.to_string()), e);
    }

    fn check(&self, op: Op, path: &Path) -> io::Result<()> {
        let text = path.display().to_string();
        let fail = self.fail.lock().unwrap();
        match fail
            .iter()
            .find(|((o, part), _)| *o == op && text.contains(part.as_str()))
        {
            Some((_, e)) => Err(io::Error::from(*e)),
            None => Ok(()),
        }
    }

    /// The logged writes whose relative path ends with `suffix`.
    pub fn written(&self, suffix: &str) -> Vec<(String, String)> {
        let log = self.writes.lock().unwrap();
        log.iter()
            .filter(|(p, _)| p.ends_with(suffix))
            .cloned()
            .collect()
    }

    fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// Remove `pid` from every `cgroup.procs` below the fake root.
    fn forget(&self, dir: &Path, pid: &str) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                self.forget(&p, pid);
            } else if p.file_name().is_some_and(|n| n == "cgroup.procs") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let kept: String = text
                    .lines()
                    .filter(|l| l.trim() != pid)
                    .map(|l| format!("{l}\n"))
                    .collect();
                std::fs::write(&p, kept).unwrap();
            }
        }
    }
}

impl CgFs for FakeFs {
    fn mkdir(&self, dir: &Path) -> io::Result<()> {
        self.check(Op::Mkdir, dir)?;
        let parent = dir.parent().expect("fake dirs have parents");
        if self.readonly.lock().unwrap().contains(parent) {
            return Err(io::Error::from(Errno::EACCES));
        }
        std::fs::create_dir(dir)?;
        if let Ok(subtree) = std::fs::read_to_string(parent.join("cgroup.subtree_control")) {
            for (name, value) in v2_files(&subtree) {
                std::fs::write(dir.join(name), value)?;
            }
            return Ok(());
        }
        // v1: a child has the parent's interface files; values start as the parent's, except
        // membership.
        for e in std::fs::read_dir(parent)?.flatten() {
            if e.path().is_file() {
                let name = e.file_name();
                let value = match name.to_str() {
                    Some("cgroup.procs" | "tasks") => String::new(),
                    _ => std::fs::read_to_string(e.path())?,
                };
                std::fs::write(dir.join(name), value)?;
            }
        }
        Ok(())
    }

    fn rmdir(&self, dir: &Path) -> io::Result<()> {
        self.check(Op::Rmdir, dir)?;
        if !dir.is_dir() {
            return Err(io::Error::from(Errno::ENOENT));
        }
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        let has_child = std::fs::read_dir(dir)?.flatten().any(|e| e.path().is_dir());
        if !procs.trim().is_empty() || has_child {
            return Err(io::Error::from(Errno::EBUSY));
        }
        std::fs::remove_dir_all(dir)
    }

    fn write(&self, file: &Path, value: &str) -> io::Result<()> {
        self.check(Op::Write, file)?;
        if !file.is_file() {
            return Err(io::Error::from(Errno::ENOENT));
        }
        let dir = file.parent().expect("files have a parent");
        match file.file_name().and_then(|n| n.to_str()) {
            Some("cgroup.procs") => {
                self.forget(&self.root, value.trim());
                let mut text = std::fs::read_to_string(file)?;
                text.push_str(&format!("{}\n", value.trim()));
                std::fs::write(file, text)?;
            }
            Some("cgroup.kill") => {
                // The members die, so they leave every hierarchy.
                let procs = std::fs::read_to_string(dir.join("cgroup.procs"))?;
                for pid in procs.lines() {
                    self.forget(&self.root, pid.trim());
                }
            }
            Some("cgroup.subtree_control") => {
                let internal = dir.join("cgroup.type").exists()
                    && !std::fs::read_to_string(dir.join("cgroup.procs"))?
                        .trim()
                        .is_empty();
                if internal {
                    return Err(io::Error::from(Errno::EBUSY));
                }
                let mut on: Vec<String> = std::fs::read_to_string(file)?
                    .split_whitespace()
                    .map(String::from)
                    .collect();
                for token in value.split_whitespace() {
                    let (add, name) = token.split_at(1);
                    on.retain(|c| c != name);
                    if add == "+" {
                        on.push(name.to_string());
                    }
                }
                std::fs::write(file, on.join(" "))?;
            }
            _ => std::fs::write(file, value)?,
        }
        self.writes
            .lock()
            .unwrap()
            .push((self.rel(file), value.to_string()));
        Ok(())
    }

    fn read(&self, file: &Path) -> io::Result<String> {
        std::fs::read_to_string(file)
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        File::open(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn writable(&self, dir: &Path) -> bool {
        !self.readonly.lock().unwrap().contains(dir)
    }

    fn signal(&self, pid: i32, sig: Signal) -> io::Result<()> {
        self.signals.lock().unwrap().push((pid, sig));
        if sig == Signal::SIGKILL {
            self.forget(&self.root, &pid.to_string());
        }
        Ok(())
    }
}
