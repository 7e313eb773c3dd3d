//! Validation: one parsed profile file applied on top of the policy its parent produced.
//!
//! Applying layers in order (the root of the `extends` chain first) gives the merge rules of
//! docs/profiles.md for free: a field the file sets replaces the inherited value, a table is
//! merged field by field because each field is applied on its own, and list fields append. Every
//! value is checked here, against the file it came from, so errors point at the right place.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::error::{ProfileError, SourceFile, nearest};
use super::values::{
    abs_path, as_str, choice, count, cpus, duration, relative_to, size, strings, unknown_value,
};
use super::wire::{
    LandlockSection, LimitsSection, MountEntry, PolicySection, ProfileFile, RootfsSection,
    RunSection, SeccompSection,
};
use crate::policy::{
    AnalysisMode, BestEffort, BindMount, CodeVia, NetworkMode, OutputMode, Policy, RootFs,
    SeccompDefault,
};
use crate::{analysis, guard, rootfs, seccomp};

/// What one file says about itself (never inherited).
pub struct Meta {
    pub description: String,
    pub aliases: Vec<String>,
}

/// Where relative paths and rootfs names are resolved.
pub struct Context<'a> {
    pub src: &'a SourceFile<'a>,
    /// Directory of the file, for relative paths; `None` for built-in profiles.
    pub dir: Option<&'a Path>,
    /// Directories searched for a named rootfs, in order.
    pub rootfs_dirs: &'a [PathBuf],
}

type Res<T> = Result<T, ProfileError>;

/// Apply `file` on top of `policy` (which holds the parent's result, or the defaults).
pub fn apply(file: ProfileFile, cx: &Context<'_>, policy: &mut Policy) -> Res<Meta> {
    let meta = meta(&file, cx)?;
    if let Some(net) = &file.network {
        policy.network = match choice(cx, net, "network", &["none", "loopback"])? {
            "none" => NetworkMode::None,
            _ => NetworkMode::Loopback,
        };
    }
    for layer in &file.best_effort {
        policy
            .best_effort
            .allow(layer.get_ref())
            .map_err(|_| unknown_value(cx, layer, "best_effort", BestEffort::LAYERS))?;
    }
    apply_run(&file.run, cx, policy)?;
    super::compile::apply_compile(&file.compile, cx, policy)?;
    apply_rootfs(file.rootfs, cx, policy)?;
    apply_limits(&file.limits, cx, policy)?;
    apply_seccomp(&file.seccomp, cx, policy)?;
    apply_landlock(&file.landlock, cx, policy)?;
    for (key, value) in &file.env {
        check_env(cx, key, value)?;
        policy.set_env(key.get_ref(), value.get_ref());
    }
    apply_policy(&file.policy, cx, policy)?;
    Ok(meta)
}

fn meta(file: &ProfileFile, cx: &Context<'_>) -> Res<Meta> {
    let description = match &file.description {
        Some(d) if !d.get_ref().trim().is_empty() => d.get_ref().trim().to_string(),
        Some(d) => {
            return Err(cx.src.error(
                d.span(),
                "description",
                "`description` is empty".into(),
                None,
            ));
        }
        None => {
            return Err(cx.src.error(
                0..0,
                "description",
                "missing field `description`".into(),
                Some("every profile says in one paragraph what it allows and why".into()),
            ));
        }
    };
    let mut aliases = Vec::new();
    for alias in &file.aliases {
        if !super::valid_name(alias.get_ref()) {
            let msg = format!("`aliases`: invalid name `{}`", alias.get_ref());
            let hint = "use lowercase letters, digits, `_` and `-`".to_string();
            return Err(cx.src.error(alias.span(), "aliases", msg, Some(hint)));
        }
        aliases.push(alias.get_ref().clone());
    }
    Ok(Meta {
        description,
        aliases,
    })
}

fn apply_run(run: &RunSection, cx: &Context<'_>, policy: &mut Policy) -> Res<()> {
    if let Some(command) = &run.command {
        policy.argv = strings(cx, command, "run.command")?;
    }
    if let Some(code) = &run.code {
        policy.code.via = match choice(cx, code, "run.code", &["argument", "file", "stdin"])? {
            "argument" => CodeVia::Argument,
            "file" => CodeVia::File,
            _ => CodeVia::Stdin,
        };
    }
    if let Some(flag) = &run.code_flag {
        let flag = strings(cx, std::slice::from_ref(flag), "run.code_flag")?;
        policy.code.flag = flag.into_iter().next().filter(|f| !f.is_empty());
    }
    if let Some(name) = &run.file_name {
        let n = name.get_ref();
        if n.is_empty() || n.contains(['/', '\0']) || n == "." || n == ".." {
            let msg = format!("`run.file_name`: `{n}` is not a plain file name");
            let hint = "the file is written to /sandbox/<file_name>; give a name such as main.py";
            return Err(cx
                .src
                .error(name.span(), "run.file_name", msg, Some(hint.into())));
        }
        policy.code.file_name = n.clone();
    }
    if let Some(args) = &run.args {
        policy.code.args = strings(cx, args, "run.args")?;
    }
    if let Some(cwd) = &run.cwd {
        policy.cwd = abs_path(cx, cwd, "run.cwd")?;
    }
    if let Some(host) = &run.hostname {
        let h = host.get_ref();
        let ok = !h.is_empty()
            && h.len() <= 64
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !ok {
            let msg = format!("`run.hostname`: `{h}` is not a valid host name");
            let hint = "use 1 to 64 letters, digits, `-` and `.`".to_string();
            return Err(cx.src.error(host.span(), "run.hostname", msg, Some(hint)));
        }
        policy.hostname = h.clone();
    }
    Ok(())
}

fn apply_rootfs(section: RootfsSection, cx: &Context<'_>, policy: &mut Policy) -> Res<()> {
    if let Some(root) = &section.root {
        policy.rootfs = resolve_root(cx, root)?;
    }
    for entry in &section.mounts {
        let mount = mount(cx, entry)?;
        // Same target: the child's mount replaces the inherited one instead of stacking on it.
        policy.mounts.retain(|m| m.target != mount.target);
        policy.mounts.push(mount);
    }
    Ok(())
}

fn resolve_root(cx: &Context<'_>, root: &Spanned<String>) -> Res<RootFs> {
    let text = root.get_ref();
    if text == "host" {
        return Ok(RootFs::Host);
    }
    let field = "rootfs.root";
    if text.contains('/') {
        let path = relative_to(cx, Path::new(text));
        if !path.is_dir() {
            let msg = format!(
                "`{field}`: rootfs directory {} does not exist",
                path.display()
            );
            let hint = "build one with scripts/build-rootfs (docs/rootfs.md)".to_string();
            return Err(cx.src.error(root.span(), field, msg, Some(hint)));
        }
        return Ok(RootFs::Dir(path));
    }
    if !super::valid_name(text) {
        let msg = format!("`{field}`: `{text}` is neither `host`, a rootfs name nor a path");
        return Err(cx.src.error(root.span(), field, msg, None));
    }
    match rootfs::find(text, cx.rootfs_dirs) {
        Some(dir) => Ok(RootFs::Dir(dir)),
        None => {
            let searched: Vec<String> = cx
                .rootfs_dirs
                .iter()
                .map(|d| d.join(text).display().to_string())
                .collect();
            let msg = format!(
                "`{field}`: rootfs `{text}` not found (looked in {})",
                searched.join(", ")
            );
            let hint = format!("build it with `scripts/build-rootfs {text}`");
            Err(cx.src.error(root.span(), field, msg, Some(hint)))
        }
    }
}

fn mount(cx: &Context<'_>, entry: &MountEntry) -> Res<BindMount> {
    let Some(source) = &entry.source else {
        let msg = "`rootfs.mounts`: a mount needs a `source`".to_string();
        let span = entry.target.as_ref().map_or(0..0, Spanned::span);
        return Err(cx.src.error(span, "rootfs.mounts.source", msg, None));
    };
    let src_path = abs_path(cx, source, "rootfs.mounts.source")?;
    if !src_path.exists() {
        let msg = format!(
            "`rootfs.mounts.source`: {} does not exist",
            src_path.display()
        );
        return Err(cx
            .src
            .error(source.span(), "rootfs.mounts.source", msg, None));
    }
    let target = entry.target.as_ref().unwrap_or(source);
    let tgt_path = abs_path(cx, target, "rootfs.mounts.target")?;
    let reserved = tgt_path == Path::new("/")
        || tgt_path.starts_with("/proc")
        || tgt_path.starts_with("/dev")
        || tgt_path == Path::new("/tmp")
        || tgt_path == Path::new(crate::policy::SANDBOX_DIR);
    if reserved {
        let msg = format!(
            "`rootfs.mounts.target`: cannot mount over {}",
            tgt_path.display()
        );
        let hint = "/, /proc, /dev, /tmp and /sandbox belong to the sandbox itself".to_string();
        return Err(cx
            .src
            .error(target.span(), "rootfs.mounts.target", msg, Some(hint)));
    }
    Ok(BindMount {
        source: src_path,
        target: tgt_path,
        writable: entry.writable,
    })
}

fn apply_limits(l: &LimitsSection, cx: &Context<'_>, policy: &mut Policy) -> Res<()> {
    let lim = &mut policy.limits;
    if let Some(v) = &l.wall {
        lim.wall = duration(cx, v, "limits.wall")?;
    }
    if let Some(v) = &l.cpu {
        lim.cpu = duration(cx, v, "limits.cpu")?;
    }
    if let Some(v) = &l.memory {
        lim.memory = size(cx, v, "limits.memory", true)?;
    }
    if let Some(v) = &l.pids {
        lim.pids = count(cx, v, "limits.pids", true)?;
    }
    if let Some(v) = &l.cpus {
        lim.cpus = cpus(cx, v)?;
    }
    let required = [
        (&l.output, &mut lim.output, "limits.output"),
        (&l.tmp_size, &mut lim.tmp_size, "limits.tmp_size"),
        (
            &l.sandbox_size,
            &mut lim.sandbox_size,
            "limits.sandbox_size",
        ),
        (&l.file_size, &mut lim.file_size, "limits.file_size"),
        (&l.stack, &mut lim.stack, "limits.stack"),
    ];
    for (value, slot, field) in required {
        if let Some(v) = value {
            *slot = size(cx, v, field, false)?.unwrap_or(*slot);
        }
    }
    if let Some(v) = &l.open_files {
        lim.open_files = count(cx, v, "limits.open_files", false)?.unwrap_or(lim.open_files);
    }
    if let Some(v) = &l.output_mode {
        let text = as_str(cx, v, "limits.output_mode", "`kill` or `truncate`")?;
        lim.output_mode = match choice(cx, &text, "limits.output_mode", &["kill", "truncate"])? {
            "kill" => OutputMode::Kill,
            _ => OutputMode::Truncate,
        };
    }
    Ok(())
}

fn apply_seccomp(s: &SeccompSection, cx: &Context<'_>, policy: &mut Policy) -> Res<()> {
    if let Some(action) = &s.default_action {
        let options = ["kill", "errno", "log"];
        policy.seccomp.default_action =
            match choice(cx, action, "seccomp.default_action", &options)? {
                "kill" => SeccompDefault::Kill,
                "errno" => SeccompDefault::Errno,
                _ => SeccompDefault::Log,
            };
    }
    let groups: Vec<&str> = seccomp::GROUPS.iter().map(|g| g.name).collect();
    for name in &s.groups {
        let name = choice(cx, name, "seccomp.groups", &groups)?.to_string();
        if !policy.seccomp.groups.contains(&name) {
            policy.seccomp.groups.push(name);
        }
    }
    for name in &s.allow {
        if seccomp::syscall_number(name.get_ref()).is_none() {
            return Err(unknown_syscall(cx, name));
        }
        if !policy.seccomp.extra_allow.contains(name.get_ref()) {
            policy.seccomp.extra_allow.push(name.get_ref().clone());
        }
    }
    Ok(())
}

fn unknown_syscall(cx: &Context<'_>, name: &Spanned<String>) -> ProfileError {
    let known: Vec<String> = (0..1024)
        .filter_map(seccomp::syscall_name)
        .map(str::to_string)
        .collect();
    let msg = format!("`seccomp.allow`: unknown syscall `{}`", name.get_ref());
    let hint = nearest(name.get_ref(), &known).map(|n| format!("did you mean `{n}`?"));
    cx.src.error(name.span(), "seccomp.allow", msg, hint)
}

fn apply_landlock(l: &LandlockSection, cx: &Context<'_>, policy: &mut Policy) -> Res<()> {
    for (list, field, out) in [
        (&l.read, "landlock.read", &mut policy.landlock.read),
        (&l.write, "landlock.write", &mut policy.landlock.write),
    ] {
        for path in list {
            let path = abs_path(cx, path, field)?;
            if !out.contains(&path) {
                out.push(path);
            }
        }
    }
    Ok(())
}

fn apply_policy(p: &PolicySection, cx: &Context<'_>, policy: &mut Policy) -> Res<()> {
    if let Some(preset) = &p.preset {
        // The analyzer's own list, so a profile can name exactly the presets it knows.
        let presets = analysis::preset_names();
        policy.analysis.preset = choice(cx, preset, "policy.preset", &presets)?.to_string();
    }
    if let Some(mode) = &p.mode {
        policy.analysis.mode = match choice(cx, mode, "policy.mode", &["off", "warn", "enforce"])? {
            "off" => AnalysisMode::Off,
            "warn" => AnalysisMode::Warn,
            _ => AnalysisMode::Enforce,
        };
    }
    if let Some(lang) = &p.language {
        let languages = analysis::Language::ALL.map(analysis::Language::name);
        policy.analysis.language =
            Some(choice(cx, lang, "policy.language", &languages)?.to_string());
    }
    if let Some(threshold) = &p.threshold {
        let name = choice(
            cx,
            threshold,
            "policy.threshold",
            &["low", "medium", "high"],
        )?;
        policy.analysis.threshold = analysis::Severity::from_name(name);
    }
    if let Some(modules) = &p.allowed_modules {
        let mut names = Vec::new();
        for module in modules {
            check_module_name(cx, module)?;
            names.push(module.get_ref().clone());
        }
        policy.analysis.allowed_modules = Some(names);
    }
    for name in &p.blocked_functions {
        let name = choice(cx, name, "policy.blocked_functions", guard::BLOCKABLE)?;
        if !policy.analysis.blocked_functions.iter().any(|b| b == name) {
            policy.analysis.blocked_functions.push(name.to_string());
        }
    }
    Ok(())
}

/// A module name as an import names it: Python's dotted names, node's packages (`lodash`,
/// `@scope/pkg`, `node:fs`). Nothing that could read as a path or break out of a string.
fn check_module_name(cx: &Context<'_>, module: &Spanned<String>) -> Res<()> {
    let name = module.get_ref();
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(['.', '/'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '@' | '/' | ':'));
    if ok {
        return Ok(());
    }
    let field = "policy.allowed_modules";
    let msg = format!("`{field}`: `{name}` is not a module name");
    let hint =
        "give top-level modules as imports name them: `json`, `os.path`, `lodash`".to_string();
    Err(cx.src.error(module.span(), field, msg, Some(hint)))
}

fn check_env(cx: &Context<'_>, key: &Spanned<String>, value: &Spanned<String>) -> Res<()> {
    let k = key.get_ref();
    if k.is_empty() || k.contains(['=', '\0']) {
        let msg = format!("`env`: `{k}` is not a valid variable name");
        let hint = "a name may not be empty or contain `=`".to_string();
        return Err(cx.src.error(key.span(), "env", msg, Some(hint)));
    }
    if value.get_ref().contains('\0') {
        let msg = format!("`env.{k}`: the value contains a NUL byte");
        return Err(cx.src.error(value.span(), &format!("env.{k}"), msg, None));
    }
    Ok(())
}
