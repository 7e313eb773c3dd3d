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
        let attach = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let t1 = Instant::now();
        for _ in 0..calls {
            // SAFETY: getppid has no arguments and no side effects.
            unsafe { libc::syscall(libc::SYS_getppid) };
        }
        let per_call =
            u64::try_from(t1.elapsed().as_nanos()).unwrap_or(u64::MAX) / u64::from(calls.max(1));
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
