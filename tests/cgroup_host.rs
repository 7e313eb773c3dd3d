//! The cgroup limit manager on this host (cgroup v1/hybrid here; any backend the host offers):
//! real groups, real payloads, real kernel enforcement.
//!
//! Needs root (or a delegated cgroup). Without it, every test prints why it cannot run the limit
//! checks and asserts that detection fails with the documented `NotDelegated` error instead.
//! Children are started exactly like the sandbox starts its init: `clone3` with
//! `CLONE_INTO_CGROUP` into `clone_into_fd()`, `attach()` for the v1 hierarchies, then released
//! through a pipe.

use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use stockade::cgroup::{BackendKind, CgroupError, CgroupOptions, LimitManager, RunGroup};
use stockade::policy::Limits;
use stockade::sys::{Cloned, clone3};

/// Tests run one at a time: `detect()` reaps groups of dead owners, and the stale-group test
/// needs to look at its group before anyone else's `detect()` does.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The manager, or `None` after asserting the documented error when we may not use cgroups.
fn manager() -> Option<LimitManager> {
    match LimitManager::detect(&CgroupOptions::default()) {
        Ok(m) => Some(m),
        Err(e) if !nix::unistd::Uid::effective().is_root() => {
            eprintln!("not root: the limit checks need a delegated cgroup; detection said: {e}");
            assert!(
                matches!(e, CgroupError::NotDelegated { .. }),
                "undocumented error: {e}"
            );
            assert!(e.to_string().contains("Delegate=yes"), "{e}");
            None
        }
        Err(e) => panic!("detection failed as root: {e}"),
    }
}

fn limits(memory: Option<u64>, pids: Option<u64>, cpus: Option<f64>) -> Limits {
    Limits {
        memory,
        pids,
        cpus,
        ..Limits::default()
    }
}

/// A child born in the group and blocked until `release`.
struct Child {
    pid: i32,
    go: OwnedFd,
}

fn spawn(group: &RunGroup, argv: &[&str]) -> Child {
    let args: Vec<CString> = argv.iter().map(|a| CString::new(*a).unwrap()).collect();
    let mut ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    match clone3(0, group.clone_into_fd()).expect("clone3") {
        Cloned::Child => {
            let mut byte = 0u8;
            // SAFETY: after clone3 in a threaded process the child may only make
            // async-signal-safe calls: read(2), execv(2) and _exit(2) on memory prepared before.
            unsafe {
                libc::read(r.as_raw_fd(), std::ptr::addr_of_mut!(byte).cast(), 1);
                libc::execv(ptrs[0], ptrs.as_ptr());
                libc::_exit(127)
            }
        }
        Cloned::Parent { pid, .. } => {
            drop(r);
            group.attach(pid).expect("attach");
            Child { pid, go: w }
        }
    }
}

impl Child {
    fn release(&self) {
        nix::unistd::write(&self.go, b"g").unwrap();
    }

    /// Wait up to `limit` for the child to end.
    fn wait(&self, limit: Duration) -> WaitStatus {
        let until = Instant::now() + limit;
        loop {
            match waitpid(Pid::from_raw(self.pid), Some(WaitPidFlag::WNOHANG)).unwrap() {
                WaitStatus::StillAlive if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                status => return status,
            }
        }
    }
}

fn gone(paths: &[PathBuf]) -> bool {
    paths.iter().all(|p| !p.exists())
}

fn record(name: &str) -> PathBuf {
    Path::new("/run/stockade/cgroups").join(name)
}

#[test]
fn detection_reports_the_backend_of_this_host() {
    let _s = serial();
    let Some(mgr) = manager() else { return };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v1_memory = mountinfo
        .lines()
        .any(|l| l.contains(" - cgroup ") && l.split(',').any(|o| o.trim() == "memory"));
    let has_v2 = mountinfo.contains(" - cgroup2 ");
    let expect = match (v1_memory, has_v2) {
        (true, true) => "hybrid",
        (true, false) => "v1",
        (false, _) => "v2",
    };
    eprintln!("backend: {}", mgr.backend_name());
    assert_eq!(mgr.backend_name(), expect);
    assert!(
        mgr.require(&limits(Some(64 << 20), Some(32), Some(0.5)))
            .is_ok()
    );
    let forced = LimitManager::detect(&CgroupOptions {
        root: None,
        force: Some(BackendKind::None),
    })
    .unwrap();
    assert_eq!(forced.backend(), BackendKind::None);
    let g = forced.create(&limits(Some(1 << 20), None, None)).unwrap();
    assert!(!g.enforced().memory_limit_enforced);
    assert!(g.paths().is_empty());
}

#[test]
fn a_memory_hog_is_oom_killed_and_the_event_fires() {
    let _s = serial();
    let Some(mgr) = manager() else { return };
    let g = mgr.create(&limits(Some(32 << 20), Some(64), None)).unwrap();
    // tail keeps the current line in memory, and /dev/zero never ends a line.
    let child = spawn(&g, &["/usr/bin/tail", "/dev/zero"]);
    child.release();
    let mut fds = [PollFd::new(
        g.event_fd().expect("an OOM watch"),
        PollFlags::POLLIN,
    )];
    let ready = poll(&mut fds, PollTimeout::from(10_000u16)).unwrap();
    assert_eq!(ready, 1, "no OOM event within 10 s");
    let status = child.wait(Duration::from_secs(10));
    assert_eq!(
        status,
        WaitStatus::Signaled(Pid::from_raw(child.pid), Signal::SIGKILL, false)
    );
    let s = g.stats();
    eprintln!("{s:?}");
    assert!(g.oom_kills().unwrap() >= 1);
    assert!(s.oom_kills.unwrap() >= 1);
    let peak = s.memory_peak_bytes.unwrap();
    assert!((16 << 20..=33 << 20).contains(&peak), "peak {peak}");
    let paths = g.paths().to_vec();
    g.destroy().unwrap();
    assert!(gone(&paths));
}

#[test]
fn a_fork_loop_is_held_at_the_pids_limit() {
    let _s = serial();
    let Some(mgr) = manager() else { return };
    let g = mgr.create(&limits(None, Some(8), None)).unwrap();
    let script = "i=0; while [ $i -lt 40 ]; do /usr/bin/sleep 30 & i=$((i+1)); done";
    let child = spawn(&g, &["/bin/sh", "-c", script]);
    child.release();
    let status = child.wait(Duration::from_secs(10));
    assert!(
        !matches!(status, WaitStatus::StillAlive),
        "the loop did not end"
    );
    let s = g.stats();
    eprintln!("{s:?}");
    assert!(s.pids_limit_hits.unwrap() > 0);
    if let Some(peak) = s.pids_peak {
        assert!(peak <= 8, "pids peak {peak}");
    }
    assert_eq!(g.populated(), Some(true), "the sleeps are still there");
    g.kill().unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while g.populated() == Some(true) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(g.populated(), Some(false));
    let paths = g.paths().to_vec();
    g.destroy().unwrap();
    assert!(gone(&paths));
}

#[test]
fn a_cpu_quota_throttles_a_busy_loop() {
    let _s = serial();
    let Some(mgr) = manager() else { return };
    let g = mgr.create(&limits(None, None, Some(0.2))).unwrap();
    let child = spawn(&g, &["/bin/sh", "-c", "while :; do :; done"]);
    let started = Instant::now();
    child.release();
    std::thread::sleep(Duration::from_millis(1500));
    let used = g.cpu_usage_us().unwrap();
    let wall = u64::try_from(started.elapsed().as_micros()).unwrap();
    assert!(g.kill().unwrap() || kill(Pid::from_raw(child.pid), Signal::SIGKILL).is_ok());
    child.wait(Duration::from_secs(5));
    let s = g.stats();
    eprintln!("used {used} µs of {wall} µs wall; {s:?}");
    assert!(used > 0);
    // 20 % of one core; a generous bound that an unthrottled loop (~100 %) cannot meet.
    assert!(used * 10 < wall * 6, "used {used} µs in {wall} µs");
    assert!(s.cpu_throttled_us.unwrap() > 0);
    assert!(s.cpu_user_us.unwrap() + s.cpu_system_us.unwrap() >= used);
    g.destroy().unwrap();
}

#[test]
fn kill_ends_a_stopped_child() {
    let _s = serial();
    let Some(mgr) = manager() else { return };
    let g = mgr.create(&limits(None, None, None)).unwrap();
    let child = spawn(&g, &["/usr/bin/sleep", "100"]);
    child.release();
    kill(Pid::from_raw(child.pid), Signal::SIGSTOP).unwrap();
    let stopped = waitpid(Pid::from_raw(child.pid), Some(WaitPidFlag::WUNTRACED)).unwrap();
    assert_eq!(
        stopped,
        WaitStatus::Stopped(Pid::from_raw(child.pid), Signal::SIGSTOP)
    );
    assert_eq!(g.kill().unwrap(), g.enforced().kill_all);
    if !g.enforced().kill_all {
        eprintln!("no cgroup.kill on this host: kill() signalled the listed members");
    }
    let status = child.wait(Duration::from_secs(5));
    assert_eq!(
        status,
        WaitStatus::Signaled(Pid::from_raw(child.pid), Signal::SIGKILL, false)
    );
    g.destroy().unwrap();
}

#[test]
fn destroy_ends_a_stopped_signal_ignoring_payload_and_leaves_nothing() {
    let _s = serial();
    let Some(mgr) = manager() else { return };
    let g = mgr
        .create(&limits(Some(64 << 20), Some(16), Some(1.0)))
        .unwrap();
    let name = g.name().to_string();
    let paths = g.paths().to_vec();
    assert!(
        paths.len() >= 2 || mgr.backend() == BackendKind::V2,
        "{paths:?}"
    );
    assert!(paths.iter().all(|p| p.is_dir()) && record(&name).is_file());
    let child = spawn(
        &g,
        &["/bin/sh", "-c", "trap '' TERM INT HUP; /usr/bin/sleep 100"],
    );
    child.release();
    std::thread::sleep(Duration::from_millis(50));
    kill(Pid::from_raw(child.pid), Signal::SIGSTOP).unwrap();
    g.destroy().unwrap();
    assert!(gone(&paths), "left behind: {paths:?}");
    assert!(!record(&name).exists());
    let status = child.wait(Duration::from_secs(5));
    assert_eq!(
        status,
        WaitStatus::Signaled(Pid::from_raw(child.pid), Signal::SIGKILL, false)
    );
}

/// Role of the re-executed test binary in `a_killed_supervisors_group_is_reaped_on_next_start`.
const HELPER_ENV: &str = "STOCKADE_CGROUP_HOST_HELPER";

#[test]
fn a_killed_supervisors_group_is_reaped_on_next_start() {
    if std::env::var_os(HELPER_ENV).is_some() {
        // The supervisor: a group with a live member, then SIGKILL mid-run.
        let mgr = LimitManager::detect(&CgroupOptions::default()).unwrap();
        let g = mgr.create(&limits(Some(64 << 20), Some(16), None)).unwrap();
        let child = spawn(&g, &["/usr/bin/sleep", "60"]);
        child.release();
        println!("GROUP {}", g.name());
        for p in g.paths() {
            println!("PATH {}", p.display());
        }
        println!("MEMBER {}", child.pid);
        let _ = kill(Pid::this(), Signal::SIGKILL);
        unreachable!("SIGKILL");
    }
    let _s = serial();
    let Some(_) = manager() else { return };
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_killed_supervisors_group_is_reaped_on_next_start",
            "--nocapture",
        ])
        .env(HELPER_ENV, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Read up to the last line the helper prints; its member inherited the pipe and keeps it
    // open, so waiting for EOF would wait for the member.
    let mut text = String::new();
    let mut lines = BufReader::new(helper.stdout.take().unwrap()).lines();
    while !text.contains("MEMBER ") {
        let line = lines.next().expect("helper output ended early").unwrap();
        text.push_str(&line);
        text.push('\n');
    }
    let status = helper.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let field = |key: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(key))
            .map(String::from)
            .collect()
    };
    let name = field("GROUP ").pop().expect("helper printed its group");
    let paths: Vec<PathBuf> = field("PATH ").iter().map(PathBuf::from).collect();
    let member: i32 = field("MEMBER ").pop().unwrap().parse().unwrap();
    assert!(paths.iter().all(|p| p.is_dir()), "{paths:?}");
    assert!(record(&name).is_file());
    assert!(
        kill(Pid::from_raw(member), None).is_ok(),
        "the member outlived its supervisor"
    );

    let _next = LimitManager::detect(&CgroupOptions::default()).unwrap();
    assert!(gone(&paths), "not reaped: {paths:?}");
    assert!(!record(&name).exists());
    // The member was killed (it is reaped by whoever inherited it, so allow a moment).
    let until = Instant::now() + Duration::from_secs(5);
    let alive = || {
        std::fs::read_to_string(format!("/proc/{member}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        })
    };
    while alive() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!alive(), "member {member} survived the reaping");
}

#[test]
fn the_child_is_born_inside_the_group() {
    let _s = serial();
    let Some(mgr) = manager() else { return };
    let g = mgr.create(&limits(Some(64 << 20), None, None)).unwrap();
    let child = spawn(&g, &["/usr/bin/sleep", "100"]);
    // Still blocked before exec: every hierarchy of the group already lists it.
    let me = child.pid.to_string();
    for p in g.paths() {
        let procs = std::fs::read_to_string(p.join("cgroup.procs")).unwrap();
        assert!(procs.lines().any(|l| l == me), "{} lacks {me}", p.display());
    }
    child.release();
    g.destroy().unwrap();
    child.wait(Duration::from_secs(5));
}
