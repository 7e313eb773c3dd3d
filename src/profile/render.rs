//! The effective policy printed back in the profile format (`stockade run --print-policy`,
//! `stockade profile show`). Saved to a file, the output loads again as the same policy.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use toml::{Table, Value};

use crate::policy::{CompileStage, Policy, RootFs};
use crate::units::{format_duration, format_size};

/// Render `policy` as a profile (TOML) in the order of docs/profiles.md. `copy_in` has no
/// profile field and is listed as comments.
pub fn render_policy(policy: &Policy) -> String {
    let mut out = format!("# effective policy of profile `{}`\n", policy.profile);
    for c in &policy.copy_in {
        out.push_str(&format!(
            "# copy-in: {} -> {}\n",
            c.source.display(),
            c.target.display()
        ));
    }
    let description = format!("Effective policy of profile `{}`.", policy.profile);
    let mut best_effort = Vec::new();
    for (on, layer) in [
        (policy.best_effort.landlock, "landlock"),
        (policy.best_effort.cgroup, "cgroup"),
    ] {
        if on {
            best_effort.push(Value::from(layer));
        }
    }
    let top = Table::from_iter([
        ("description".to_string(), Value::from(description)),
        ("network".to_string(), word(&policy.network).into()),
        ("best_effort".to_string(), best_effort.into()),
    ]);
    emit(&mut out, None, &top);
    let mut rootfs = rootfs(policy);
    let mounts = rootfs.remove("mounts");
    emit(&mut out, Some("run"), &run(policy));
    if let Some(stage) = &policy.compile {
        let (compile, limits) = compile(stage);
        emit(&mut out, Some("compile"), &compile);
        emit(&mut out, Some("compile.limits"), &limits);
    }
    emit(&mut out, Some("rootfs"), &rootfs);
    for mount in mounts.iter().filter_map(Value::as_array).flatten() {
        if let Some(t) = mount.as_table() {
            emit(&mut out, Some("[rootfs.mounts]"), t);
        }
    }
    emit(&mut out, Some("limits"), &limits(policy));
    let seccomp = Table::from_iter([
        (
            "default_action".to_string(),
            Value::from(word(&policy.seccomp.default_action)),
        ),
        ("groups".to_string(), strings(&policy.seccomp.groups)),
        ("allow".to_string(), strings(&policy.seccomp.extra_allow)),
    ]);
    emit(&mut out, Some("seccomp"), &seccomp);
    let landlock = Table::from_iter([
        ("read".to_string(), paths(&policy.landlock.read)),
        ("write".to_string(), paths(&policy.landlock.write)),
    ]);
    emit(&mut out, Some("landlock"), &landlock);
    let env: Table = policy
        .env
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    emit(&mut out, Some("env"), &env);
    let mut analysis = Table::new();
    analysis.insert("preset".into(), policy.analysis.preset.as_str().into());
    analysis.insert("mode".into(), word(&policy.analysis.mode).into());
    if let Some(threshold) = policy.analysis.threshold {
        analysis.insert("threshold".into(), threshold.as_str().into());
    }
    if let Some(modules) = &policy.analysis.allowed_modules {
        analysis.insert("allowed_modules".into(), modules.clone().into());
    }
    if !policy.analysis.blocked_functions.is_empty() {
        let blocked = policy.analysis.blocked_functions.clone();
        analysis.insert("blocked_functions".into(), blocked.into());
    }
    if let Some(lang) = &policy.analysis.language {
        analysis.insert("language".into(), lang.as_str().into());
    }
    emit(&mut out, Some("policy"), &analysis);
    out
}

/// One `[header]` (or the top level) with `key = value` lines in the order of `FIELD_ORDER`.
fn emit(out: &mut String, header: Option<&str>, table: &Table) {
    if let Some(h) = header {
        out.push_str(&format!("\n[{h}]\n"));
    }
    let mut keys: Vec<&String> = table.keys().collect();
    // Fields in documentation order; anything else (env names) alphabetically after them.
    keys.sort_by_key(|k| {
        (
            FIELD_ORDER
                .iter()
                .position(|f| f == k)
                .unwrap_or(usize::MAX),
            k.as_str(),
        )
    });
    for key in keys {
        out.push_str(&format!("{} = {}\n", toml_key(key), table[key.as_str()]));
    }
}

const FIELD_ORDER: &[&str] = &[
    "description",
    "network",
    "best_effort",
    "command",
    "code",
    "code_flag",
    "file_name",
    "args",
    "cwd",
    "hostname",
    "root",
    "source",
    "target",
    "writable",
    "wall",
    "cpu",
    "memory",
    "pids",
    "cpus",
    "output",
    "output_mode",
    "tmp_size",
    "sandbox_size",
    "open_files",
    "file_size",
    "stack",
    "default_action",
    "groups",
    "allow",
    "read",
    "write",
    "preset",
    "mode",
    "language",
    "threshold",
    "allowed_modules",
    "blocked_functions",
];

/// A bare key when TOML allows one, else a quoted one.
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_string()
    } else {
        Value::from(key).to_string()
    }
}

fn run(policy: &Policy) -> Table {
    let mut run = Table::new();
    run.insert("command".into(), strings(&policy.argv));
    run.insert("code".into(), word(&policy.code.via).into());
    run.insert(
        "code_flag".into(),
        policy.code.flag.clone().unwrap_or_default().into(),
    );
    run.insert("file_name".into(), policy.code.file_name.as_str().into());
    run.insert("args".into(), strings(&policy.code.args));
    run.insert("cwd".into(), policy.cwd.display().to_string().into());
    run.insert("hostname".into(), policy.hostname.as_str().into());
    run
}

fn compile(stage: &CompileStage) -> (Table, Table) {
    let mut c = Table::new();
    c.insert("command".into(), strings(&stage.argv));
    c.insert("file_name".into(), stage.file_name.as_str().into());
    c.insert("output".into(), stage.output.as_str().into());
    let l = &stage.limits;
    let unlimited = || Value::from("unlimited");
    let dur = |d: Option<Duration>| d.map_or_else(unlimited, |d| format_duration(d).into());
    let count = |n: u64| i64::try_from(n).map_or_else(|_| unlimited(), Value::from);
    let mut t = Table::new();
    t.insert("wall".into(), dur(l.wall));
    t.insert("cpu".into(), dur(l.cpu));
    t.insert(
        "memory".into(),
        l.memory.map_or_else(unlimited, |m| format_size(m).into()),
    );
    t.insert("pids".into(), l.pids.map_or_else(unlimited, count));
    t.insert("output".into(), format_size(l.output).into());
    (c, t)
}

fn rootfs(policy: &Policy) -> Table {
    let mut rootfs = Table::new();
    let root = match &policy.rootfs {
        RootFs::Host => "host".to_string(),
        RootFs::Dir(dir) => dir.display().to_string(),
    };
    rootfs.insert("root".into(), root.into());
    let mounts: Vec<Value> = policy
        .mounts
        .iter()
        .map(|m| {
            let mut t = Table::new();
            t.insert("source".into(), m.source.display().to_string().into());
            t.insert("target".into(), m.target.display().to_string().into());
            t.insert("writable".into(), m.writable.into());
            Value::Table(t)
        })
        .collect();
    rootfs.insert("mounts".into(), mounts.into());
    rootfs
}

fn limits(policy: &Policy) -> Table {
    let l = &policy.limits;
    let unlimited = || Value::from("unlimited");
    let dur = |d: Option<Duration>| d.map_or_else(unlimited, |d| format_duration(d).into());
    let size = |s: u64| Value::from(format_size(s));
    let count = |n: u64| i64::try_from(n).map_or_else(|_| unlimited(), Value::from);
    let mut t = Table::new();
    t.insert("wall".into(), dur(l.wall));
    t.insert("cpu".into(), dur(l.cpu));
    t.insert("memory".into(), l.memory.map_or_else(unlimited, size));
    t.insert("pids".into(), l.pids.map_or_else(unlimited, count));
    t.insert("cpus".into(), l.cpus.map_or_else(unlimited, Value::from));
    t.insert("output".into(), size(l.output));
    t.insert("output_mode".into(), word(&l.output_mode).into());
    t.insert("tmp_size".into(), size(l.tmp_size));
    t.insert("sandbox_size".into(), size(l.sandbox_size));
    t.insert("open_files".into(), count(l.open_files));
    t.insert("file_size".into(), size(l.file_size));
    t.insert("stack".into(), size(l.stack));
    t
}

/// The serde name of a unit enum variant (`none`, `kill`, `argument`).
fn word<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

fn strings(list: &[String]) -> Value {
    list.iter()
        .map(|s| Value::from(s.as_str()))
        .collect::<Vec<_>>()
        .into()
}

fn paths<P: AsRef<Path>>(list: &[P]) -> Value {
    list.iter()
        .map(|p| Value::from(p.as_ref().display().to_string()))
        .collect::<Vec<_>>()
        .into()
}
