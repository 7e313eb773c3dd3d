//! Compiled languages: a compile stage, then a run stage, each a sandbox with its own limits and
//! its own verdict, sharing the work dir `/sandbox`.
//!
//! This is the one place that knows a policy may have two stages. Today each stage is a one-shot
//! [`super::run`] with a host work dir ([`WorkDir`]) bound read-write over `/sandbox`; a sandbox
//! that lives for several execs can take the two `stage` calls over without changing callers.
//! The verdict is the run stage's, with the compile stage's verdict in `compile`; when the compile
//! stage does not succeed, the run stage is not started and the status is `compile_failed`
//! (docs/verdict.md).

use std::path::{Path, PathBuf};

use super::workdir::WorkDir;
use super::{Echo, RunOptions, Stdin};
use crate::ns::IdMap;
use crate::policy::{BindMount, CompileStage, Policy, SANDBOX_DIR};
use crate::verdict::{Status, Verdict};

/// Run `policy`: its compile stage first when it has one, then the program.
pub fn run(policy: &Policy, opts: RunOptions) -> Verdict {
    let Some(stage) = &policy.compile else {
        return super::run(policy, &opts);
    };
    // Both stages run as the same outer ids, which own the shared work dir.
    let lease = match IdMap::for_caller() {
        Ok(lease) => lease,
        Err(e) => {
            return Verdict::not_started(
                Status::SetupFailed,
                policy.limits.clone(),
                format!("compile stage: {e}"),
            );
        }
    };
    let work = match WorkDir::create(policy.limits.sandbox_size, &lease.ids) {
        Ok(w) => w,
        Err(e) => {
            return Verdict::not_started(
                Status::SetupFailed,
                policy.limits.clone(),
                format!("compile stage: {e}"),
            );
        }
    };
    let RunOptions {
        stdin,
        echo,
        limits,
        forward_signals,
        files,
        cancel,
        ids: _,
    } = opts;
    let compile_opts = RunOptions {
        // The compiler reads no input; the caller's stdin belongs to the program.
        stdin: Stdin::Null,
        // The CLI shows the compiler's messages as they come; a service's event stream carries
        // the program's output only, the compiler's is in the verdict's `compile` part.
        echo: match echo {
            Echo::Stdio => Echo::Stdio,
            _ => Echo::Off,
        },
        limits,
        forward_signals,
        files,
        cancel,
        ids: Some(lease.ids),
    };
    let compiled = super::run(&compile_policy(policy, stage, work.path()), &compile_opts);
    if compiled.status != Status::Ok {
        return not_run(policy, compiled);
    }
    let run_opts = RunOptions {
        stdin,
        echo,
        limits,
        forward_signals,
        files: Vec::new(),
        cancel,
        ids: Some(lease.ids),
    };
    let mut verdict = super::run(&run_policy(policy, work.path()), &run_opts);
    verdict.compile = Some(Box::new(compiled));
    verdict
}

/// The compile stage: the run's policy with the compiler's command and limits; the program's
/// files (given inline or copied in) are written into the shared work dir.
fn compile_policy(policy: &Policy, stage: &CompileStage, work: &Path) -> Policy {
    let mut p = shared(policy, work);
    p.argv.clone_from(&stage.argv);
    p.limits = stage.limits.over(&policy.limits);
    p
}

/// The run stage: the files are already in the work dir, next to what the compiler made.
fn run_policy(policy: &Policy, work: &Path) -> Policy {
    let mut p = shared(policy, work);
    p.copy_in.clear();
    p
}

fn shared(policy: &Policy, work: &Path) -> Policy {
    let mut p = policy.clone();
    p.compile = None;
    p.mounts.push(BindMount {
        source: work.to_path_buf(),
        target: PathBuf::from(SANDBOX_DIR),
        writable: true,
    });
    p
}

/// The verdict when the compile stage failed: nothing of the run, the compile stage's verdict,
/// and a message naming why. A set-up failure stays `setup_failed` (stockade's fault, not the
/// code's).
fn not_run(policy: &Policy, compiled: Verdict) -> Verdict {
    let compiler = compiled_name(policy);
    let (status, message) = match compiled.status {
        Status::SetupFailed => (
            Status::SetupFailed,
            format!(
                "compile stage: {}",
                compiled.message.clone().unwrap_or_default()
            ),
        ),
        Status::ExitNonzero => (
            Status::CompileFailed,
            format!(
                "compilation failed: {compiler} exited with code {}; the program was not run",
                compiled.exit_code.unwrap_or(1)
            ),
        ),
        other => (
            Status::CompileFailed,
            format!(
                "compilation failed: the compile stage ended with {}{}; the program was not run",
                other.as_str(),
                compiled
                    .message
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ),
        ),
    };
    let mut v = Verdict::not_started(status, policy.limits.clone(), message);
    // The layers that were enforced are the compile stage's: it is the only sandbox that ran.
    v.enforced = compiled.enforced.clone();
    v.compile = Some(Box::new(compiled));
    v
}

fn compiled_name(policy: &Policy) -> String {
    policy
        .compile
        .as_ref()
        .and_then(|s| s.argv.first())
        .map_or_else(|| "the compiler".into(), |c| c.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::StageLimits;

    fn c() -> Policy {
        Policy {
            argv: vec!["/sandbox/main".into()],
            compile: Some(CompileStage {
                argv: vec!["gcc".into(), "/sandbox/main.c".into()],
                limits: StageLimits {
                    memory: Some(512 << 20),
                    ..StageLimits::default()
                },
                ..CompileStage::default()
            }),
            ..Policy::default()
        }
    }

    #[test]
    fn both_stages_bind_the_work_dir_and_keep_their_own_limits() {
        let mut p = c();
        p.limits.memory = Some(64 << 20);
        p.copy_in.push(crate::policy::CopyIn {
            source: "/x.c".into(),
            target: "/sandbox/x.c".into(),
        });
        let work = Path::new("/tmp/stockade-work-test");
        let stage = p.compile.clone().unwrap();
        let cp = compile_policy(&p, &stage, work);
        assert_eq!(cp.argv, ["gcc", "/sandbox/main.c"]);
        assert_eq!(cp.limits.memory, Some(512 << 20));
        assert_eq!(cp.limits.file_size, p.limits.file_size);
        assert!(cp.compile.is_none() && cp.copy_in.len() == 1);
        let rp = run_policy(&p, work);
        assert_eq!(rp.argv, ["/sandbox/main"]);
        assert_eq!(rp.limits.memory, Some(64 << 20));
        assert!(rp.copy_in.is_empty() && rp.compile.is_none());
        for q in [&cp, &rp] {
            let m = q.mounts.last().unwrap();
            assert_eq!((m.source.as_path(), m.writable), (work, true));
            assert_eq!(m.target, Path::new("/sandbox"));
        }
    }

    #[test]
    fn a_failed_compile_names_the_compiler_and_skips_the_run() {
        let p = c();
        let mut compiled = Verdict::not_started(Status::ExitNonzero, p.limits.clone(), "".into());
        compiled.exit_code = Some(1);
        compiled.enforced.userns = true;
        let v = not_run(&p, compiled);
        assert!(v.enforced.userns, "the compile stage's layers are reported");
        assert_eq!(v.status, Status::CompileFailed);
        assert_eq!(v.exit_code(), 1);
        let msg = v.message.clone().unwrap();
        assert!(msg.contains("gcc exited with code 1"), "{msg}");
        assert_eq!(v.compile.unwrap().status, Status::ExitNonzero);
        let timed_out = Verdict::not_started(Status::TimeoutWall, p.limits.clone(), "".into());
        let v = not_run(&p, timed_out);
        assert_eq!((v.status, v.exit_code()), (Status::CompileFailed, 124));
        let broken = Verdict::not_started(Status::SetupFailed, p.limits.clone(), "x".into());
        assert_eq!(not_run(&p, broken).status, Status::SetupFailed);
    }
}
