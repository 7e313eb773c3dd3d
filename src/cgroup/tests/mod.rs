//! Unit tests of the limit manager against a fake cgroupfs (no root needed).

mod common;
mod v1;
mod v2;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::fake::FakeFs;
use super::{CgroupOptions, Host, LimitManager};
use crate::policy::Limits;

/// The fake supervisor's pid and start time.
pub(super) const PID: u32 = 4242;
pub(super) const START: u64 = 777;

/// A `/proc/<pid>/stat` line with `start` in field 22 and a command name that contains `) (`.
pub(super) fn stat_line(pid: u32, start: u64) -> String {
    format!(
        "{pid} (odd) (name) S 1 {pid} {pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0\n"
    )
}

pub(super) struct Fixture {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub fs: Arc<FakeFs>,
    pub host: Host,
}

impl Fixture {
    fn new(mountinfo: &str, proc_cgroup: &str) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let fs = Arc::new(FakeFs::new(&root));
        let info = mountinfo.replace("{root}", root.to_str().unwrap());
        put(&root.join("proc/self/mountinfo"), &info);
        put(&root.join("proc/self/cgroup"), proc_cgroup);
        put(&root.join("proc/self/stat"), &stat_line(PID, START));
        put(
            &root.join(format!("proc/{PID}/stat")),
            &stat_line(PID, START),
        );
        let host = Host {
            fs: fs.clone(),
            proc_dir: root.join("proc"),
            state_dir: root.join("run/stockade/cgroups"),
            uid: 0,
            pid: PID,
        };
        Fixture {
            _tmp: tmp,
            root,
            fs,
            host,
        }
    }

    /// A cgroup v2 host under systemd: we run in `system.slice/stockade.service`, and the
    /// ancestors enable `cpu memory pids` for their children.
    pub fn v2() -> Fixture {
        let f = Fixture::new(
            "22 1 0:21 / /proc rw - proc proc rw\n\
             35 24 0:30 / {root}/cg rw,nosuid,nodev shared:9 - cgroup2 cgroup2 rw,nsdelegate\n",
            "0::/system.slice/stockade.service\n",
        );
        let cg = f.root.join("cg");
        put(
            &cg.join("cgroup.controllers"),
            "cpuset cpu io memory hugetlb pids\n",
        );
        put(&cg.join("cgroup.subtree_control"), "cpu memory pids\n");
        put(&cg.join("cgroup.procs"), "1\n");
        f.mkdir("cg/system.slice");
        put(
            &cg.join("system.slice/cgroup.subtree_control"),
            "cpu memory pids\n",
        );
        f.mkdir("cg/system.slice/stockade.service");
        put(
            &f.path("cg/system.slice/stockade.service/cgroup.procs"),
            &format!("{PID}\n"),
        );
        f
    }

    /// This development machine: v1 memory (nested in `process_api/abc`), pids, cpu and cpuacct
    /// each in its own hierarchy, name=systemd, and an empty cgroup2 at `unified`.
    pub fn hybrid() -> Fixture {
        let f = Fixture::new(
            "31 23 0:28 / {root}/cg rw,relatime - tmpfs tmpfs rw,mode=755\n\
             32 31 0:29 / {root}/cg/cpu rw,relatime - cgroup cgroup rw,cpu\n\
             33 31 0:30 / {root}/cg/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n\
             35 31 0:32 / {root}/cg/memory rw,relatime - cgroup cgroup rw,memory\n\
             39 31 0:36 / {root}/cg/pids rw,relatime - cgroup cgroup rw,pids\n\
             40 31 0:37 / {root}/cg/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
             41 31 0:38 / {root}/cg/unified rw,relatime - cgroup2 cgroup2 rw\n",
            "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n2:cpuacct:/\n1:cpu:/\n0::/\n",
        );
        let files: &[(&str, &str)] = &[
            ("cg/memory/process_api/abc/cgroup.procs", "4242\n"),
            ("cg/memory/process_api/abc/cgroup.event_control", ""),
            (
                "cg/memory/process_api/abc/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
            (
                "cg/memory/process_api/abc/memory.memsw.limit_in_bytes",
                "9223372036854771712\n",
            ),
            ("cg/memory/process_api/abc/memory.max_usage_in_bytes", "0\n"),
            ("cg/memory/process_api/abc/memory.swappiness", "60\n"),
            (
                "cg/memory/process_api/abc/memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
            ),
            ("cg/pids/cgroup.procs", "4242\n"),
            ("cg/pids/pids.max", "max\n"),
            ("cg/pids/pids.peak", "0\n"),
            ("cg/pids/pids.events", "max 0\n"),
            ("cg/cpu/cgroup.procs", "4242\n"),
            ("cg/cpu/cpu.cfs_period_us", "100000\n"),
            ("cg/cpu/cpu.cfs_quota_us", "-1\n"),
            (
                "cg/cpu/cpu.stat",
                "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n",
            ),
            ("cg/cpuacct/cgroup.procs", "4242\n"),
            ("cg/cpuacct/cpuacct.usage", "0\n"),
            ("cg/cpuacct/cpuacct.usage_user", "0\n"),
            ("cg/cpuacct/cpuacct.usage_sys", "0\n"),
            ("cg/cpuacct/cpuacct.stat", "user 0\nsystem 0\n"),
            ("cg/systemd/cgroup.procs", "4242\n"),
            ("cg/unified/cgroup.procs", "4242\n"),
            ("cg/unified/cgroup.controllers", "\n"),
            ("cg/unified/cgroup.subtree_control", "\n"),
            (
                "cg/unified/cpu.stat",
                "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
            ),
        ];
        for (path, value) in files {
            put(&f.path(path), value);
        }
        f
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// A directory created the way the kernel would (interface files included).
    pub fn mkdir(&self, rel: &str) {
        use super::fsops::CgFs;
        self.fs.mkdir(&self.path(rel)).unwrap();
    }

    pub fn detect(&self, opts: &CgroupOptions) -> Result<LimitManager, super::CgroupError> {
        LimitManager::detect_on(self.host.clone(), opts).map(|mut m| {
            m.timeout = Duration::from_millis(30);
            m
        })
    }

    /// Owner records in the state dir.
    pub fn records(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.host.state_dir) else {
            return Vec::new();
        };
        entries.flatten().map(|e| e.path()).collect()
    }

    /// A path relative to the fake root, for comparing with the write log.
    pub fn rel(&self, p: &Path) -> String {
        p.strip_prefix(&self.root).unwrap().display().to_string()
    }
}

pub(super) fn put(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

pub(super) fn limits(memory: Option<u64>, pids: Option<u64>, cpus: Option<f64>) -> Limits {
    Limits {
        memory,
        pids,
        cpus,
        ..Limits::default()
    }
}

/// Whether `fd` is readable right now.
pub(super) fn readable(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::ZERO).unwrap() == 1
}
