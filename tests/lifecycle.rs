//! The sandbox lifecycle through the library: one sandbox, several execs, each with its own
//! verdict and each confined like a one-shot payload; a socket created inside the sandbox's
//! network namespace handed to the supervisor; one seccomp listener serving every exec, counted
//! per exec; nothing left behind by destroy or drop.
//!
//! Each test runs in its own process under nextest; the sandbox is cloned from the test's thread
//! while the harness's main thread only waits for it.

use std::io::{ErrorKind, Read};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use stockade::cgroup::{CgroupOptions, LimitManager};
use stockade::policy::{Execution, File, NetworkMode, Policy};
use stockade::sandbox::{CreateOptions, ExecOptions, Sandbox};
use stockade::verdict::{Status, Verdict};

fn shell(policy: &Policy, script: &str) -> Execution {
    let mut p = policy.clone();
    p.argv = vec!["sh".into(), "-c".into(), script.into()];
    p.execution(Vec::new())
}

fn stdout(v: &Verdict) -> String {
    serde_json::to_value(v).unwrap()["stdout"]["data"]
        .as_str()
        .unwrap()
        .to_string()
}

/// What a program reports about its own confinement, as the isolation probe checks it.
const CONFINED: &str = "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; \
                        touch /usr/stockade-probe 2>&1 | grep -o 'Read-only file system'";

fn assert_confined(v: &Verdict) {
    let out = stdout(v);
    for line in [
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
        "Read-only file system",
    ] {
        assert!(out.contains(line), "{line:?} missing from {out:?}");
    }
}

#[test]
fn one_sandbox_three_execs_each_confined_with_its_own_verdict() {
    let policy = Policy::default();
    let mut sandbox = Sandbox::create(&policy.shape(), &CreateOptions::default()).unwrap();
    let first = sandbox.exec(
        &shell(
            &policy,
            &format!("echo kept > /sandbox/note; echo pid=$$ ppid=$PPID; {CONFINED}"),
        ),
        &ExecOptions::default(),
    );
    assert_eq!(first.status, Status::Ok, "{first:?}");
    assert_eq!(first.exit_code, Some(0));
    // The first program has the pid a one-shot payload always had.
    assert!(stdout(&first).starts_with("pid=2 ppid=1\n"), "{first:?}");
    assert_confined(&first);

    let second = sandbox.exec(
        &shell(&policy, &format!("{CONFINED}; echo second >&2; exit 3")),
        &ExecOptions::default(),
    );
    assert_eq!(second.status, Status::ExitNonzero, "{second:?}");
    assert_eq!(second.exit_code, Some(3));
    assert_confined(&second);
    assert!(!stdout(&second).contains("pid=2"), "output is per exec");
    assert_eq!(second.stderr.data, "second\n");

    // Files of an exec are written at exec time, beside what earlier execs left.
    let mut third = shell(
        &policy,
        "cat /sandbox/note /sandbox/in/given.txt; ls -l /sandbox/in",
    );
    third.files.push(File {
        path: "/sandbox/in/given.txt".into(),
        contents: b"given\n".to_vec(),
        mode: 0o4640,
    });
    let third = sandbox.exec(&third, &ExecOptions::default());
    assert_eq!(third.status, Status::Ok, "{third:?}");
    let out = stdout(&third);
    assert!(out.starts_with("kept\ngiven\n"), "{out:?}");
    // The mode arrives without the setuid bit.
    assert!(out.contains("-rw-r----- "), "{out:?}");
    sandbox.destroy();
}

#[test]
fn the_wall_clock_starts_at_hand_over() {
    let mut policy = Policy::default();
    policy.limits.wall = Some(Duration::from_millis(400));
    let mut sandbox = Sandbox::create(&policy.shape(), &CreateOptions::default()).unwrap();
    // A warm sandbox may wait longer than any exec's wall time before it is used.
    std::thread::sleep(Duration::from_millis(600));
    let v = sandbox.exec(&shell(&policy, "exit 0"), &ExecOptions::default());
    assert_eq!(v.status, Status::Ok, "{v:?}");
    assert!(v.wall_ms < 400, "{v:?}");
    let v = sandbox.exec(&shell(&policy, "sleep 5"), &ExecOptions::default());
    assert_eq!(v.status, Status::TimeoutWall, "{v:?}");
    // A limit ends the sandbox: a later exec is refused, and says why.
    let v = sandbox.exec(&shell(&policy, "exit 0"), &ExecOptions::default());
    assert_eq!(v.status, Status::SetupFailed, "{v:?}");
    assert!(v.message.unwrap().contains("sandbox is gone"));
}

#[test]
fn a_socket_made_in_the_sandbox_netns_is_handed_to_the_supervisor() {
    let mut policy = Policy::default();
    policy.network = NetworkMode::Loopback;
    let mut sandbox = Sandbox::create(&policy.shape(), &CreateOptions::default()).unwrap();
    let (port, fd) = sandbox.listen(0).unwrap();
    let listener = TcpListener::from(fd);
    assert_eq!(listener.local_addr().unwrap().port(), port);
    assert!(listener.local_addr().unwrap().ip().is_loopback());
    listener.set_nonblocking(true).unwrap();
    // From the host's network namespace, this socket is not reachable at 127.0.0.1:port.
    let _ = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200));
    assert_eq!(
        listener.accept().map(drop).unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "a host connection reached the sandbox's listener"
    );
    // A program inside the sandbox connects to its own loopback and reaches us through it.
    let script = format!(
        "import socket; s = socket.create_connection(('127.0.0.1', {port})); \
         s.sendall(b'hello from inside'); s.close()"
    );
    let mut p = policy.clone();
    p.argv = vec!["python3".into(), "-c".into(), script];
    let v = sandbox.exec(&p.execution(Vec::new()), &ExecOptions::default());
    assert_eq!(v.status, Status::Ok, "{v:?}");
    listener.set_nonblocking(false).unwrap();
    let (mut conn, peer) = listener.accept().unwrap();
    assert!(peer.ip().is_loopback());
    let mut got = String::new();
    conn.read_to_string(&mut got).unwrap();
    assert_eq!(got, "hello from inside");
    // Without the loopback network there is nothing to listen on, and the sandbox says so
    // (and lives on).
    let mut closed =
        Sandbox::create(&Policy::default().shape(), &CreateOptions::default()).unwrap();
    let err = closed.listen(0).unwrap_err().to_string();
    assert!(err.contains("network = \"loopback\""), "{err}");
    let v = closed.exec(&shell(&policy, "exit 0"), &ExecOptions::default());
    assert_eq!(v.status, Status::Ok, "{v:?}");
}

#[test]
fn destroy_and_drop_leave_no_process_or_cgroup_behind() {
    let manager = LimitManager::detect(&CgroupOptions::default()).ok();
    let mut policy = Policy::default();
    policy.limits.pids = Some(64);
    policy.best_effort.cgroup = true;
    let create = CreateOptions {
        limits: manager.as_ref(),
        ..CreateOptions::default()
    };
    for destroy in [true, false] {
        let mut sandbox = Sandbox::create(&policy.shape(), &create).unwrap();
        // Something that outlives its exec, holding no pipe of it.
        let v = sandbox.exec(
            &shell(&policy, "sleep 60 >/dev/null 2>&1 & echo started"),
            &ExecOptions::default(),
        );
        assert_eq!(stdout(&v), "started\n", "{v:?}");
        let init = format!("/proc/{}", sandbox.pid());
        let groups = sandbox.cgroup_paths();
        assert!(Path::new(&init).exists());
        assert!(groups.iter().all(|g| g.exists()));
        if destroy {
            sandbox.destroy();
        } else {
            drop(sandbox);
        }
        // The init is reaped only once every process of its PID namespace is gone.
        assert!(!Path::new(&init).exists(), "{init} still there");
        for g in groups {
            assert!(!g.exists(), "{} still there", g.display());
        }
    }
}

/// One seccomp listener serves every program of a sandbox; each verdict counts its own exec.
#[test]
fn seccomp_refusals_and_kills_are_counted_per_exec() {
    let policy = Policy::default();
    let mut sandbox = Sandbox::create(&policy.shape(), &CreateOptions::default()).unwrap();
    let mut run = |script: &str| {
        let v = sandbox.exec(&shell(&policy, script), &ExecOptions::default());
        serde_json::to_value(&v).unwrap()
    };
    let unknown = r#"python3 -c "import ctypes; s = ctypes.CDLL(None).syscall; s(1000); s(1000)""#;
    let first = run(unknown);
    assert_eq!(first["status"], "ok", "{first}");
    assert_eq!(first["seccomp_denied"][0]["nr"], 1000, "{first}");
    assert_eq!(first["seccomp_denied"][0]["errno"], "ENOSYS", "{first}");
    assert_eq!(first["seccomp_denied"][0]["count"], 2, "{first}");

    let quiet = run("true");
    assert_eq!(quiet["status"], "ok", "{quiet}");
    assert_eq!(quiet["seccomp_denied"], serde_json::json!([]), "{quiet}");

    // A grandchild's dangerous call: it dies, the shell goes on, the exec is a violation.
    let ptrace =
        r#"python3 -c "import ctypes; ctypes.CDLL(None).syscall(101, 0, 0, 0, 0)"; echo after"#;
    let third = run(ptrace);
    assert_eq!(third["status"], "seccomp_violation", "{third}");
    assert_eq!(third["seccomp_violation"]["syscall"], "ptrace", "{third}");
    assert_eq!(third["stdout"]["data"], "after\n", "{third}");

    let fourth = run(unknown);
    assert_eq!(
        fourth["status"], "ok",
        "the violation was the third exec's: {fourth}"
    );
    assert_eq!(
        fourth["seccomp_violation"],
        serde_json::Value::Null,
        "{fourth}"
    );
    assert_eq!(fourth["seccomp_denied"][0]["count"], 2, "{fourth}");
    sandbox.destroy();
}
