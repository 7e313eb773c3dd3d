//! Attach-cost and per-call measurements (not timed assertions): why the allowlist is a search
//! tree. Run with `cargo test --release --lib seccomp::bench -- --ignored --nocapture`.
//!
//! Each sample forks a child that installs one program and reports, through a pipe, how long
//! `seccomp(2)` took and how long 100 000 `getppid()` calls took afterwards.

use std::collections::BTreeMap;
use std::time::Instant;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

use super::*;

const SAMPLES: usize = 25;
const CALLS: u32 = 100_000;

/// `(attach ns, ns per getppid)` for one child installing `program` (or nothing when empty);
/// the `getppid` loop is skipped (0) when the program does not allow it.
fn sample(program: &[sock_filter], calls: u32) -> (u64, u64) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid two-element array for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the child only makes raw system calls and reads the vDSO clock, then `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let t0 = Instant::now();
        if !program.is_empty() && seccompiler::apply_filter(program).is_err() {
            // SAFETY: leave the child without running the parent's handlers.
            unsafe { libc::_exit(1) };
        }
        let attach = t0.elapsed().as_nanos() as u64;
        let t1 = Instant::now();
        for _ in 0..calls {
            // SAFETY: getppid has no arguments and no side effects.
            unsafe { libc::syscall(libc::SYS_getppid) };
        }
        let per_call = t1.elapsed().as_nanos() as u64 / u64::from(calls.max(1));
        let out = [attach, per_call];
        // SAFETY: writes 16 bytes from a live stack array to our pipe, then exits.
        unsafe {
            libc::write(fds[1], out.as_ptr().cast(), 16);
            libc::_exit(0);
        }
    }
    let mut buf = [0u64; 2];
    // SAFETY: reads into a live 16-byte buffer, reaps our child, closes our descriptors.
    unsafe {
        libc::close(fds[1]);
        assert_eq!(
            libc::read(fds[0], buf.as_mut_ptr().cast(), 16),
            16,
            "child failed"
        );
        libc::close(fds[0]);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    (buf[0], buf[1])
}

fn median(program: &[sock_filter], calls: u32) -> (u64, u64) {
    let mut attach = Vec::with_capacity(SAMPLES);
    let mut call = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let (a, c) = sample(program, calls);
        attach.push(a);
        call.push(c);
    }
    attach.sort_unstable();
    call.sort_unstable();
    (attach[SAMPLES / 2], call[SAMPLES / 2])
}

/// seccompiler's linear layout: `on_match` for `nrs`, `mismatch` for everything else.
fn linear(
    nrs: impl Iterator<Item = i64>,
    mismatch: SeccompAction,
    on_match: SeccompAction,
) -> BpfProgram {
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> = nrs.map(|nr| (nr, vec![])).collect();
    let filter = SeccompFilter::new(rules, mismatch, on_match, TargetArch::x86_64);
    filter.expect("valid filter").try_into().expect("compiles")
}

/// `program` with a leading load of `args[0]`: the kernel's action-cache emulation
/// (`seccomp_is_const_allow`) gives up at the first argument load, so this copy is attached
/// without the per-syscall-number emulation while filtering exactly the same way.
fn without_cache(program: &[sock_filter]) -> Vec<sock_filter> {
    let mut out = vec![sock_filter {
        code: 0x20,
        jt: 0,
        jf: 0,
        k: 16,
    }];
    out.extend_from_slice(program);
    out
}

fn report(label: &str, program: &[sock_filter]) {
    let init = compile_init().expect("init filter");
    let calls = if program == init.program() { 0 } else { CALLS };
    let (attach, call) = median(program, calls);
    let call = if calls == 0 {
        "-".to_string()
    } else {
        call.to_string()
    };
    eprintln!(
        "{label:<40} {:5} insns  attach {attach:7} ns  getppid {call:>4} ns",
        program.len()
    );
}

#[test]
#[ignore = "measurement, prints numbers; run with --ignored --nocapture"]
fn attach_cost_by_layout_and_size() {
    let t = Instant::now();
    let ours = compile(&SeccompPolicy::default(), NetworkMode::None).unwrap();
    let first = t.elapsed();
    let t = Instant::now();
    let again = compile(&SeccompPolicy::default(), NetworkMode::Loopback).unwrap();
    eprintln!(
        "compile: first {first:?} (builds the name index), then {:?}",
        t.elapsed()
    );
    assert!(again.instructions() > 0);
    let allowed = table::SYSCALLS.iter().map(|&(nr, _)| nr).filter(|&nr| {
        let nr = u32::try_from(nr).expect("small");
        bpf::run(ours.program(), bpf::AUDIT_ARCH_X86_64, nr, [0; 6]) == RET_ALLOW
    });
    let errno = SeccompAction::Errno(1);
    let same_set = linear(allowed, errno.clone(), SeccompAction::Allow);
    let ret_allow = [sock_filter {
        code: 0x06,
        jt: 0,
        jf: 0,
        k: RET_ALLOW,
    }];
    report("ret allow", &ret_allow);
    report("search tree: default policy", ours.program());
    report(
        "search tree: action cache defeated",
        &without_cache(ours.program()),
    );
    report("search tree: init", compile_init().unwrap().program());
    report("linear (seccompiler): same allowed set", &same_set);
    report(
        "linear: same set, action cache defeated",
        &without_cache(&same_set),
    );
    // Is there a cliff? Linear programs over numbers no syscall uses.
    for n in [50, 90, 98, 100, 102, 104, 106, 110, 120, 200] {
        let prog = linear(
            (1000..1000 + n).map(i64::from),
            SeccompAction::Allow,
            errno.clone(),
        );
        report(&format!("linear: {n} unused numbers"), &prog);
    }
}

/// Nanoseconds per call of `call` over `n` iterations.
fn per_call(n: u32, call: impl Fn()) -> u64 {
    let t = Instant::now();
    for _ in 0..n {
        call();
    }
    t.elapsed().as_nanos() as u64 / u64::from(n)
}

#[test]
#[ignore = "measurement, prints numbers; run with --ignored --nocapture"]
fn denied_call_round_trip_and_listener_set_up() {
    // syncfs(-1) is not in the allowlist (ENOSYS from the supervisor); getppid is.
    let syncfs = || {
        // SAFETY: raw call with an integer argument.
        unsafe { libc::syscall(libc::SYS_syncfs, -1) };
    };
    let getppid = || {
        // SAFETY: raw call without arguments.
        unsafe { libc::syscall(libc::SYS_getppid) };
    };
    eprintln!(
        "unfiltered syncfs(-1) (EBADF from the kernel): {} ns",
        per_call(CALLS, syncfs)
    );
    let f = compile(&SeccompPolicy::default(), NetworkMode::None).unwrap();
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid two-element array for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    const DENIED: u32 = 20_000;
    let (status, notifier) = super::child_tests::in_served_child(&f, || {
        let out = [per_call(DENIED, syncfs), per_call(CALLS, getppid)];
        // SAFETY: writes 16 bytes from a live stack array to our pipe.
        unsafe { libc::write(fds[1], out.as_ptr().cast(), 16) };
        0
    });
    let mut buf = [0u64; 2];
    // SAFETY: reads into a live 16-byte buffer and closes our descriptors.
    unsafe {
        libc::close(fds[1]);
        assert_eq!(libc::read(fds[0], buf.as_mut_ptr().cast(), 16), 16);
        libc::close(fds[0]);
    }
    assert_eq!(status, 0);
    assert_eq!(notifier.denied()[0].count, u64::from(DENIED));
    eprintln!(
        "denied call answered by the supervisor (notify round trip): {} ns; allowed getppid: {} ns",
        buf[0], buf[1]
    );
    // Set-up on the cold path: attach with a listener and hand it over (sendmsg), in the child.
    let mut samples: Vec<u64> = (0..SAMPLES).map(|_| notifying_attach(&f)).collect();
    samples.sort_unstable();
    let (plain_attach, _) = median(f.program(), 0);
    eprintln!(
        "attach with listener + hand-over: {} ns (median); plain attach of the same program: {plain_attach} ns",
        samples[SAMPLES / 2]
    );
}

/// Nanoseconds `Filters::apply_notifying` takes in a fresh child (attach + `SCM_RIGHTS` send).
fn notifying_attach(f: &Filters) -> u64 {
    use std::os::fd::AsFd;

    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair");
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid two-element array for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the child only makes raw calls (apply_notifying does not allocate), then exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let t = Instant::now();
        let ok = f.apply_notifying(theirs.as_fd()).is_ok();
        let ns = if ok { t.elapsed().as_nanos() as u64 } else { 0 };
        // SAFETY: writes 8 bytes from a live stack value to our pipe, then exits.
        unsafe {
            libc::write(fds[1], (&ns as *const u64).cast(), 8);
            libc::_exit(0);
        }
    }
    drop(theirs);
    let mut ns = 0u64;
    // SAFETY: reads into a live u64, reaps our child, closes our descriptors.
    unsafe {
        libc::close(fds[1]);
        assert_eq!(libc::read(fds[0], (&mut ns as *mut u64).cast(), 8), 8);
        libc::close(fds[0]);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    assert!(
        crate::sys::recv_fd(ours.as_fd())
            .expect("recvmsg")
            .is_some()
    );
    assert!(ns > 0, "apply_notifying failed");
    ns
}
