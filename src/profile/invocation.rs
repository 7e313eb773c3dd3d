//! Turning a policy plus the caller's code or arguments into the payload's argv and inputs.

use std::path::{Component, Path, PathBuf};

use super::ProfileError;
use crate::policy::{CodeVia, Policy, SANDBOX_DIR};

/// What the caller wants to run under a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeInput {
    /// Arguments appended to the profile's command: `stockade run --profile python -- -c 'print(1)'`
    /// runs `python3 -c 'print(1)'`.
    Args(Vec<String>),
    /// Code as text, delivered the way the profile's `[run] code` says, then the program's own
    /// arguments.
    Code { code: String, args: Vec<String> },
    /// Files written to `/sandbox`; the first is the program. Then the program's arguments.
    Files {
        files: Vec<InlineFile>,
        args: Vec<String>,
    },
}

/// A file given as content (API requests, `file` mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFile {
    /// Path relative to `/sandbox`, e.g. `main.py` or `lib/util.py`.
    pub name: String,
    pub contents: Vec<u8>,
}

/// What the runtime needs beyond the policy: the argv, files to create, and stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The full command line (becomes `Policy::argv`).
    pub argv: Vec<String>,
    /// Files to create before the payload starts.
    pub files: Vec<WorkFile>,
    /// Bytes for the payload's standard input (`code = "stdin"`).
    pub stdin: Option<Vec<u8>>,
    /// The compiler's command line, for a profile with a compile stage (becomes
    /// `Policy::compile`'s `argv`).
    pub compile_argv: Option<Vec<String>>,
    /// Environment variables to set (the run-time guards of `crate::guard`).
    pub env: Vec<(String, String)>,
}

/// A file to create in the sandbox before the payload starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkFile {
    /// Absolute path under `/sandbox`, or under `/.stockade` for the run-time guards.
    pub target: PathBuf,
    pub contents: Vec<u8>,
}

impl Invocation {
    /// Put the argv and environment into `policy` and hand back what stays outside it (files and
    /// stdin).
    pub fn apply(self, policy: &mut Policy) -> (Vec<WorkFile>, Option<Vec<u8>>) {
        policy.argv = self.argv;
        if let (Some(stage), Some(argv)) = (policy.compile.as_mut(), self.compile_argv) {
            stage.argv = argv;
        }
        for (key, value) in &self.env {
            policy.set_env(key, value);
        }
        (self.files, self.stdin)
    }
}

/// The invocation of `input` under `policy` (see docs/profiles.md, "How code arrives").
pub fn invocation(policy: &Policy, input: CodeInput) -> Result<Invocation, ProfileError> {
    if let Some(stage) = &policy.compile {
        return super::compile::invocation(policy, stage, input);
    }
    let mut inv = Invocation {
        argv: policy.argv.clone(),
        files: Vec::new(),
        stdin: None,
        compile_argv: None,
        env: Vec::new(),
    };
    let code = &policy.code;
    let args = match input {
        CodeInput::Args(args) => args,
        CodeInput::Code { code: text, args } => {
            match code.via {
                CodeVia::Argument => {
                    if text.contains('\0') {
                        return Err(ProfileError::BadInput(
                            "code passed as an argument cannot contain a NUL byte".into(),
                        ));
                    }
                    inv.argv.extend(code.flag.iter().cloned());
                    inv.argv.push(text);
                }
                CodeVia::File => {
                    let target = Path::new(SANDBOX_DIR).join(&code.file_name);
                    inv.argv.push(target.display().to_string());
                    inv.files.push(WorkFile {
                        target,
                        contents: text.into_bytes(),
                    });
                }
                CodeVia::Stdin => inv.stdin = Some(text.into_bytes()),
            }
            // A file is itself the program ($0 is its name); the profile's args (bash's `$0`
            // after `-c CODE`, python's `-` for stdin) only follow code given inline.
            if code.via != CodeVia::File {
                inv.argv.extend(code.args.iter().cloned());
            }
            args
        }
        CodeInput::Files { files, args } => {
            if files.is_empty() {
                return Err(ProfileError::BadInput("no files given".into()));
            }
            for file in files {
                let target = sandbox_path(&file.name)?;
                if inv.files.is_empty() {
                    inv.argv.push(target.display().to_string());
                }
                inv.files.push(WorkFile {
                    target,
                    contents: file.contents,
                });
            }
            args
        }
    };
    inv.argv.extend(args);
    if inv.argv.is_empty() {
        return Err(ProfileError::NoCommand(policy.profile.clone()));
    }
    if let Some(setup) = crate::guard::setup(policy) {
        crate::guard::check_argv(&inv.argv).map_err(ProfileError::BadInput)?;
        inv.files.extend(setup.files);
        inv.env = setup.env;
    }
    Ok(inv)
}

/// `/sandbox/<name>` for a relative name that stays inside `/sandbox`.
pub(super) fn sandbox_path(name: &str) -> Result<PathBuf, ProfileError> {
    let path = Path::new(name);
    let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
    if name.is_empty() || !plain || name.contains('\0') {
        return Err(ProfileError::BadInput(format!(
            "file name `{name}` must be a relative path inside /sandbox without `..`"
        )));
    }
    Ok(Path::new(SANDBOX_DIR).join(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::CodeDelivery;

    fn python() -> Policy {
        Policy {
            argv: vec!["python3".into()],
            code: CodeDelivery {
                via: CodeVia::Argument,
                flag: Some("-c".into()),
                file_name: "main.py".into(),
                args: Vec::new(),
            },
            ..Policy::default()
        }
    }

    #[test]
    fn args_are_appended_to_the_command() {
        let inv = invocation(
            &python(),
            CodeInput::Args(vec!["-c".into(), "print(1)".into()]),
        )
        .unwrap();
        assert_eq!(inv.argv, ["python3", "-c", "print(1)"]);
        assert!(inv.files.is_empty() && inv.stdin.is_none());
    }

    #[test]
    fn code_arrives_as_argument_file_or_stdin() {
        let mut p = python();
        let code = || CodeInput::Code {
            code: "print(1)".into(),
            args: vec!["x".into()],
        };
        assert_eq!(
            invocation(&p, code()).unwrap().argv,
            ["python3", "-c", "print(1)", "x"]
        );
        p.code.via = CodeVia::File;
        let inv = invocation(&p, code()).unwrap();
        assert_eq!(inv.argv, ["python3", "/sandbox/main.py", "x"]);
        let want = WorkFile {
            target: "/sandbox/main.py".into(),
            contents: b"print(1)".to_vec(),
        };
        assert_eq!(inv.files, [want]);
        p.code.via = CodeVia::Stdin;
        p.code.args = vec!["-".into()];
        let inv = invocation(&p, code()).unwrap();
        assert_eq!(inv.argv, ["python3", "-", "x"]);
        assert_eq!(inv.stdin.as_deref(), Some(&b"print(1)"[..]));
    }

    #[test]
    fn files_run_the_first_and_stay_inside_sandbox() {
        let f = |n: &str| InlineFile {
            name: n.into(),
            contents: b"1".to_vec(),
        };
        let inv = invocation(
            &python(),
            CodeInput::Files {
                files: vec![f("a.py"), f("lib/b.py")],
                args: vec![],
            },
        )
        .unwrap();
        assert_eq!(inv.argv, ["python3", "/sandbox/a.py"]);
        assert_eq!(inv.files[1].target, PathBuf::from("/sandbox/lib/b.py"));
        // bash's `$0` argument belongs to `-c CODE` only: a file's arguments start at $1.
        let mut bash = python();
        bash.argv = vec!["bash".into()];
        bash.code.args = vec!["bash".into()];
        let inv = invocation(
            &bash,
            CodeInput::Files {
                files: vec![f("a.sh")],
                args: vec!["x".into()],
            },
        )
        .unwrap();
        assert_eq!(inv.argv, ["bash", "/sandbox/a.sh", "x"]);
        for bad in ["../x", "/etc/passwd", "", "a/../../b"] {
            let err = invocation(
                &python(),
                CodeInput::Files {
                    files: vec![f(bad)],
                    args: vec![],
                },
            );
            assert!(matches!(err, Err(ProfileError::BadInput(_))), "{bad}");
        }
    }

    #[test]
    fn a_profile_without_command_needs_arguments() {
        let err = invocation(&Policy::default(), CodeInput::Args(vec![])).unwrap_err();
        assert!(
            err.to_string()
                .contains("is a security preset with no interpreter"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("--profile python --preset default"),
            "{err}"
        );
        let inv = invocation(&Policy::default(), CodeInput::Args(vec!["true".into()])).unwrap();
        assert_eq!(inv.argv, ["true"]);
    }
}
