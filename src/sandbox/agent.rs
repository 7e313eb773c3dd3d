//! The agent: a process inside the sandbox that is already under every lock a program gets
//! (rlimits, Landlock, no capabilities, no_new_privs, seccomp; `child::lock`). It waits at the
//! pre-exec point and serves the supervisor's requests: write an exec's files, fork the program
//! with the stdio it was sent and hand its pidfd up, open a listening socket in the sandbox's
//! network namespace. A sandbox whose agent waits here is a warm sandbox.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::SigSet;

use super::cause::setup_error;
use super::child::report;
use super::protocol::{self, CHILD_FD, Down, ExecSpec, Exit, FileSpec, SetupError, Up};
use crate::{fs, rlimit, sys};

/// Largest `ExecSpec` JSON accepted (argv and environment are bounded by the kernel's ARG_MAX of
/// a few MiB anyway).
const MAX_SPEC: u64 = 8 << 20;

/// Serve requests until the supervisor closes its end of the socket. Never returns.
pub(super) fn serve() -> ! {
    let sock = sys::borrow_fd(CHILD_FD);
    loop {
        match protocol::recv::<Down>(sock, false) {
            Ok(Some((Down::Exec { spec_len }, fds))) => exec(spec_len, fds),
            Ok(Some((Down::Listen { port }, _))) => listen(port),
            // The supervisor closed its end: the sandbox is being destroyed.
            Ok(None) => sys::exit_now(0),
            // Only the supervisor writes here; anything unreadable means it is not talking to us
            // any more, and a sandbox nobody controls must end.
            Err(_) => sys::exit_now(125),
        }
    }
}

/// Start one program: its files, then its process, forked as our sibling so that it is the
/// init's child (pid 2 with ppid 1 for the first, as a one-shot payload always had); the init
/// reaps it and reports its end. Every request ends with exactly one `Up::Exited` for it.
fn exec(spec_len: u64, fds: Vec<OwnedFd>) {
    let Ok([stdin, stdout, stderr, data]) = <[OwnedFd; 4]>::try_from(fds) else {
        return refuse_exec(SetupError::new(
            "exec request",
            None,
            None,
            None,
            "expected four descriptors".into(),
        ));
    };
    let mut data = std::fs::File::from(data);
    let prepared = read_spec(&mut data, spec_len).and_then(|spec| {
        write_files(&spec.files, &mut data)?;
        let argv = cstrings(spec.argv.iter().map(String::as_str))?;
        let envp = cstrings(spec.env.iter().map(|(k, v)| format!("{k}={v}")))?;
        Ok((spec, argv, envp))
    });
    drop(data);
    let (spec, argv, envp) = match prepared {
        Ok(p) => p,
        Err(e) => return refuse_exec(e),
    };
    let pid = match sys::clone_sibling() {
        Ok(0) => program(&spec, &argv, &envp, [stdin, stdout, stderr]),
        Ok(pid) => pid,
        Err(e) => return refuse_exec(setup_error("clone(CLONE_PARENT)", &e)),
    };
    // Only the program (and what it starts) may hold its pipes: EOF then means it is done.
    drop((stdin, stdout, stderr));
    match sys::pidfd_open(pid) {
        Ok(pidfd) => {
            let _ = protocol::send(
                sys::borrow_fd(CHILD_FD),
                &Up::Started { pid },
                &[pidfd.as_fd()],
            );
        }
        Err(e) => {
            // Unsupervisable: it must not run. The init's report of its death names no exec.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            refuse_exec(setup_error("pidfd_open", &e));
        }
    }
}

/// An exec that never started: its cause, then its end with code 125.
fn refuse_exec(e: SetupError) {
    report(&Up::SetupFailed(e));
    report(&Up::Exited(Exit {
        pid: 0,
        code: Some(125),
        signal: None,
        user_us: 0,
        sys_us: 0,
        maxrss: 0,
    }));
}

fn read_spec(data: &mut std::fs::File, len: u64) -> Result<ExecSpec, SetupError> {
    let bad = |why: String| SetupError::new("exec request", None, None, None, why);
    if len > MAX_SPEC {
        return Err(bad(format!("spec of {len} bytes is over {MAX_SPEC}")));
    }
    let mut json = Vec::new();
    Read::by_ref(data)
        .take(len)
        .read_to_end(&mut json)
        .map_err(|e| setup_error("exec request", &e))?;
    serde_json::from_slice(&json).map_err(|e| bad(format!("malformed spec: {e}")))
}

/// Write each file beneath its (absolute) sandbox path, creating parent directories. The agent is
/// confined like any program, so what it may write is exactly what a program may write.
fn write_files(files: &[FileSpec], data: &mut std::fs::File) -> Result<(), SetupError> {
    let mut buf = vec![0u8; 64 << 10];
    for f in files {
        let err = |call: &str, e: std::io::Error| {
            SetupError::new(
                "exec files",
                Some(call),
                Some(f.path.display().to_string()),
                e.raw_os_error().map(Errno::from_raw),
                format!("{call} {:?}: {e}", f.path),
            )
        };
        if let Some(parent) = f.path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(|e| err("mkdir", e))?;
        }
        // O_NOFOLLOW: a symlink left at the path by an earlier program is refused, not followed.
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(f.mode & 0o777)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&f.path)
            .map_err(|e| err("open", e))?;
        // A plain read/write loop: copy_file_range and sendfile may be outside the allowlist.
        let mut left = f.len;
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let n = data.read(&mut buf[..want]).map_err(|e| err("read", e))?;
            if n == 0 {
                return Err(err(
                    "read",
                    std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                ));
            }
            out.write_all(&buf[..n]).map_err(|e| err("write", e))?;
            left -= n as u64;
        }
        // The umask must not decide the mode; setuid/setgid/sticky never arrive.
        out.set_permissions(std::fs::Permissions::from_mode(f.mode & 0o777))
            .map_err(|e| err("fchmod", e))?;
    }
    Ok(())
}

fn cstrings<S: Into<Vec<u8>>>(items: impl Iterator<Item = S>) -> Result<Vec<CString>, SetupError> {
    items
        .map(|s| {
            CString::new(s)
                .map_err(|_| SetupError::new("exec request", None, None, None, "a NUL byte".into()))
        })
        .collect()
}

/// The program's process: its stdio, its CPU limit and cwd, then `execve`. Never returns.
fn program(spec: &ExecSpec, argv: &[CString], envp: &[CString], stdio: [OwnedFd; 3]) -> ! {
    let ready = (|| -> Result<(), SetupError> {
        let step = |name: &str, r: Result<(), Errno>| r.map_err(|e| setup_error(name, &e));
        for (fd, to) in stdio.iter().zip(0..) {
            step("dup2", sys::dup2(std::os::fd::AsRawFd::as_raw_fd(fd), to))?;
        }
        // Nothing but stdio and the (close-on-exec) protocol socket reaches the program.
        step("close_range", sys::close_from(CHILD_FD + 1))?;
        step("sigaction(SIGXFSZ)", sys::set_ignored(libc::SIGXFSZ, false))?;
        step("sigprocmask", SigSet::empty().thread_set_mask())?;
        if let Some(ms) = spec.cpu_ms {
            rlimit::apply(&[rlimit::cpu_limit(Duration::from_millis(ms))])
                .map_err(|e| setup_error("rlimits", &e))?;
        }
        step("chdir", nix::unistd::chdir(&spec.cwd))
    })();
    if let Err(e) = ready {
        report(&Up::SetupFailed(e));
        sys::exit_now(125);
    }
    let (path, errno) = execute(argv, envp, &spec.env);
    report(&Up::ExecFailed {
        path,
        errno: errno as i32,
    });
    sys::exit_now(if errno == Errno::ENOENT { 127 } else { 126 })
}

/// `execve` the command, searching the program's `PATH` (not the agent's: glibc's execvpe reads
/// the current environment). Returns only on failure.
fn execute(argv: &[CString], envp: &[CString], env: &[(String, String)]) -> (String, Errno) {
    let Some(first) = argv.first() else {
        return (String::new(), Errno::ENOENT);
    };
    let name = first.to_string_lossy().into_owned();
    let candidates: Vec<PathBuf> = if name.contains('/') {
        vec![PathBuf::from(&name)]
    } else {
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map_or("/usr/bin:/bin", |(_, v)| v.as_str());
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join(&name))
            .collect()
    };
    let mut last = (name.clone(), Errno::ENOENT);
    for candidate in candidates {
        let Ok(c) = fs::cstring(&candidate) else {
            continue;
        };
        let Err(err) = nix::unistd::execve(&c, argv, envp);
        // Like execvp: remember a permission problem over a plain "not here".
        if err != Errno::ENOENT || last.1 == Errno::ENOENT {
            last = (candidate.display().to_string(), err);
        }
    }
    last
}

/// A TCP socket listening on the sandbox's loopback, handed up: it lives in the sandbox's network
/// namespace, so the supervisor can accept what programs in the sandbox connect to it.
fn listen(port: u16) {
    let made = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port))
        .and_then(|l| Ok((l.local_addr()?.port(), OwnedFd::from(l))));
    match made {
        Ok((port, sock)) => {
            let _ = protocol::send(
                sys::borrow_fd(CHILD_FD),
                &Up::Listening { port },
                &[sock.as_fd()],
            );
        }
        Err(e) => {
            let mut e = setup_error("listen", &e);
            e.syscall = Some("socket/bind/listen".into());
            report(&Up::SetupFailed(e));
        }
    }
}
