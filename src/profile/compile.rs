//! Compiled languages: the `[compile]` section of a profile, and the command lines of both stages
//! once the program file is known.
//!
//! A profile with a compile stage always runs a program file in `/sandbox`: code given as text is
//! written to `[compile] file_name`; with files, the first one is the program; with bare
//! arguments, the first names a file already in `/sandbox` (the CLI copies it in). The
//! placeholders `{source}`, `{stem}`, `{output}` and `{dir}` are replaced in the compiler's
//! command and in the run's command and fixed arguments.

use std::path::Path;

use toml::Spanned;

use super::ProfileError;
use super::apply::Context;
use super::invocation::{CodeInput, Invocation, WorkFile, sandbox_path};
use super::values::{count, duration, size, strings};
use super::wire::CompileSection;
use crate::policy::{CompileStage, Policy, SANDBOX_DIR};

type Res<T> = Result<T, ProfileError>;

/// Apply `[compile]` on top of the inherited compile stage (if any).
pub(super) fn apply_compile(c: &CompileSection, cx: &Context<'_>, policy: &mut Policy) -> Res<()> {
    let l = &c.limits;
    let touched = c.command.is_some()
        || c.file_name.is_some()
        || c.output.is_some()
        || [&l.wall, &l.cpu, &l.memory, &l.pids, &l.output]
            .iter()
            .any(|v| v.is_some());
    if !touched {
        return Ok(());
    }
    let mut stage = match (policy.compile.take(), &c.command) {
        (Some(stage), _) => stage,
        (None, Some(_)) => CompileStage::default(),
        (None, None) => {
            let msg = "`compile`: a compile stage needs a `command`".to_string();
            let hint = "set [compile] command, e.g. [\"gcc\", \"-o\", \"{output}\", \"{source}\"]";
            return Err(cx
                .src
                .error(0..0, "compile.command", msg, Some(hint.into())));
        }
    };
    if let Some(command) = &c.command {
        stage.argv = strings(cx, command, "compile.command")?;
        if stage.argv.is_empty() {
            let msg = "`compile.command` is empty".to_string();
            return Err(cx.src.error(0..0, "compile.command", msg, None));
        }
    }
    if let Some(name) = &c.file_name {
        stage.file_name = plain_name(cx, name, "compile.file_name")?;
    }
    if let Some(name) = &c.output {
        stage.output = plain_name(cx, name, "compile.output")?;
    }
    let lim = &mut stage.limits;
    if let Some(v) = &l.wall {
        lim.wall = duration(cx, v, "compile.limits.wall")?;
    }
    if let Some(v) = &l.cpu {
        lim.cpu = duration(cx, v, "compile.limits.cpu")?;
    }
    if let Some(v) = &l.memory {
        lim.memory = size(cx, v, "compile.limits.memory", true)?;
    }
    if let Some(v) = &l.pids {
        lim.pids = count(cx, v, "compile.limits.pids", true)?;
    }
    if let Some(v) = &l.output {
        lim.output = size(cx, v, "compile.limits.output", false)?.unwrap_or(lim.output);
    }
    policy.compile = Some(stage);
    Ok(())
}

fn plain_name(cx: &Context<'_>, name: &Spanned<String>, field: &str) -> Res<String> {
    let n = name.get_ref();
    if n.is_empty() || n.contains(['/', '\0']) || n == "." || n == ".." {
        let msg = format!("`{field}`: `{n}` is not a plain file name");
        let hint = "the file lives in /sandbox; give a name such as main.c".to_string();
        return Err(cx.src.error(name.span(), field, msg, Some(hint)));
    }
    Ok(n.clone())
}

/// The invocation of `input` under a policy with a compile stage.
pub(super) fn invocation(
    policy: &Policy,
    stage: &CompileStage,
    input: CodeInput,
) -> Res<Invocation> {
    let mut files = Vec::new();
    let (source, args) = match input {
        CodeInput::Code { code, args } => {
            let target = Path::new(SANDBOX_DIR).join(&stage.file_name);
            files.push(WorkFile {
                target: target.clone(),
                contents: code.into_bytes(),
            });
            (target, args)
        }
        CodeInput::Files {
            files: inline,
            args,
        } => {
            let mut source = None;
            for (i, file) in inline.into_iter().enumerate() {
                let target = match i {
                    0 => program_path(&file.name, stage)?,
                    _ => sandbox_path(&file.name)?,
                };
                source.get_or_insert_with(|| target.clone());
                files.push(WorkFile {
                    target,
                    contents: file.contents,
                });
            }
            let source = source.ok_or_else(|| ProfileError::BadInput("no files given".into()))?;
            (source, args)
        }
        CodeInput::Args(mut args) => {
            if args.is_empty() {
                return Err(ProfileError::BadInput(format!(
                    "profile `{}` compiles a program: give its code with --code, or its file name first after --",
                    policy.profile
                )));
            }
            let first = args.remove(0);
            (sandbox_path(&first)?, args)
        }
    };
    let places = Placeholders::new(&source, stage);
    let mut argv: Vec<String> = policy.argv.iter().map(|a| places.fill(a)).collect();
    argv.extend(policy.code.args.iter().map(|a| places.fill(a)));
    argv.extend(args);
    if argv.is_empty() {
        return Err(ProfileError::NoCommand(policy.profile.clone()));
    }
    Ok(Invocation {
        argv,
        files,
        stdin: None,
        compile_argv: Some(stage.argv.iter().map(|a| places.fill(a)).collect()),
        // Module allowlists are an interpreter's start-up hook; a compiled program has none.
        env: Vec::new(),
    })
}

/// Where the first given file goes: under its own name when it has the extension the profile's
/// file name has (`Hello.java` stays, so javac accepts `public class Hello`), else under the
/// profile's file name (Piston clients send `file0.code` or no name at all).
fn program_path(name: &str, stage: &CompileStage) -> Res<std::path::PathBuf> {
    let want = Path::new(&stage.file_name).extension();
    let has = Path::new(name).extension();
    match !name.is_empty() && has == want {
        true => sandbox_path(name),
        false => Ok(Path::new(SANDBOX_DIR).join(&stage.file_name)),
    }
}

struct Placeholders {
    source: String,
    stem: String,
    output: String,
}

impl Placeholders {
    fn new(source: &Path, stage: &CompileStage) -> Self {
        let stem = source
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Placeholders {
            source: source.display().to_string(),
            stem,
            output: Path::new(SANDBOX_DIR)
                .join(&stage.output)
                .display()
                .to_string(),
        }
    }

    fn fill(&self, arg: &str) -> String {
        arg.replace("{source}", &self.source)
            .replace("{stem}", &self.stem)
            .replace("{output}", &self.output)
            .replace("{dir}", SANDBOX_DIR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::InlineFile;

    fn c() -> (Policy, CompileStage) {
        let stage = CompileStage {
            argv: ["gcc", "-o", "{output}", "{source}"]
                .map(String::from)
                .to_vec(),
            file_name: "main.c".into(),
            output: "main".into(),
            ..CompileStage::default()
        };
        let policy = Policy {
            profile: "c".into(),
            argv: vec!["{output}".into()],
            compile: Some(stage.clone()),
            ..Policy::default()
        };
        (policy, stage)
    }

    #[test]
    fn code_becomes_the_program_file_and_fills_both_commands() {
        let (p, s) = c();
        let input = CodeInput::Code {
            code: "int main(){}".into(),
            args: vec!["x".into()],
        };
        let inv = invocation(&p, &s, input).unwrap();
        assert_eq!(inv.argv, ["/sandbox/main", "x"]);
        assert_eq!(
            inv.compile_argv.unwrap(),
            ["gcc", "-o", "/sandbox/main", "/sandbox/main.c"]
        );
        assert_eq!(inv.files[0].target, Path::new("/sandbox/main.c"));
        assert!(inv.stdin.is_none());
    }

    #[test]
    fn a_file_keeps_its_name_only_with_the_right_extension() {
        let (p, mut s) = c();
        s.file_name = "Main.java".into();
        s.argv = vec!["javac".into(), "{source}".into()];
        let mut p = p;
        p.argv = vec!["java".into(), "{stem}".into()];
        let f = |n: &str| InlineFile {
            name: n.into(),
            contents: b"class".to_vec(),
        };
        let files = |names: &[&str]| CodeInput::Files {
            files: names.iter().map(|n| f(n)).collect(),
            args: vec![],
        };
        let inv = invocation(&p, &s, files(&["Hello.java", "lib/Util.java"])).unwrap();
        assert_eq!(inv.argv, ["java", "Hello"]);
        assert_eq!(inv.compile_argv.unwrap(), ["javac", "/sandbox/Hello.java"]);
        assert_eq!(inv.files[1].target, Path::new("/sandbox/lib/Util.java"));
        let inv = invocation(&p, &s, files(&["file0.code"])).unwrap();
        assert_eq!(inv.argv, ["java", "Main"]);
        assert!(invocation(&p, &s, files(&["../x.java"])).is_err());
        assert!(invocation(&p, &s, files(&[])).is_err());
    }

    #[test]
    fn bare_arguments_name_the_program_file_first() {
        let (p, s) = c();
        let inv = invocation(&p, &s, CodeInput::Args(vec!["hello.c".into(), "1".into()])).unwrap();
        assert_eq!(inv.argv, ["/sandbox/main", "1"]);
        assert_eq!(inv.compile_argv.unwrap()[3], "/sandbox/hello.c");
        assert!(inv.files.is_empty());
        let err = invocation(&p, &s, CodeInput::Args(vec![])).unwrap_err();
        assert!(err.to_string().contains("compiles a program"), "{err}");
    }
}
