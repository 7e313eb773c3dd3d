//! Checked conversions of single profile values (words, paths, sizes, durations, counts), each
//! failing with an error that points at the value.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml::{Spanned, Value};

use super::apply::Context;
use super::error::{ProfileError, nearest};
use crate::units;

type Res<T> = Result<T, ProfileError>;

/// One of a fixed set of words, with a "did you mean" hint for near misses.
pub(super) fn choice<'o>(
    cx: &Context<'_>,
    v: &Spanned<String>,
    field: &str,
    options: &[&'o str],
) -> Res<&'o str> {
    match options.iter().find(|o| **o == v.get_ref()) {
        Some(found) => Ok(found),
        None => Err(unknown_value(cx, v, field, options)),
    }
}

pub(super) fn unknown_value(
    cx: &Context<'_>,
    v: &Spanned<String>,
    field: &str,
    options: &[&str],
) -> ProfileError {
    let owned: Vec<String> = options.iter().map(|o| o.to_string()).collect();
    let msg = format!(
        "`{field}`: unknown value `{}` (expected one of: {})",
        v.get_ref(),
        options.join(", ")
    );
    let hint = nearest(v.get_ref(), &owned).map(|n| format!("did you mean `{n}`?"));
    cx.src.error(v.span(), field, msg, hint)
}

pub(super) fn strings(cx: &Context<'_>, list: &[Spanned<String>], field: &str) -> Res<Vec<String>> {
    list.iter()
        .map(|s| match s.get_ref().contains('\0') {
            true => Err(cx.src.error(
                s.span(),
                field,
                format!("`{field}`: contains a NUL byte"),
                None,
            )),
            false => Ok(s.get_ref().clone()),
        })
        .collect()
}

pub(super) fn abs_path(cx: &Context<'_>, v: &Spanned<String>, field: &str) -> Res<PathBuf> {
    let path = Path::new(v.get_ref());
    let bad_component = path.components().any(|c| matches!(c, Component::ParentDir));
    if !path.is_absolute() || bad_component || v.get_ref().contains('\0') {
        let msg = format!(
            "`{field}`: `{}` is not an absolute path without `..`",
            v.get_ref()
        );
        return Err(cx.src.error(v.span(), field, msg, None));
    }
    Ok(path.to_path_buf())
}

pub(super) fn relative_to(cx: &Context<'_>, path: &Path) -> PathBuf {
    match (path.is_absolute(), cx.dir) {
        (false, Some(dir)) => dir.join(path),
        _ => path.to_path_buf(),
    }
}

pub(super) fn as_str(
    cx: &Context<'_>,
    v: &Spanned<Value>,
    field: &str,
    expected: &str,
) -> Res<Spanned<String>> {
    match v.get_ref() {
        Value::String(s) => Ok(Spanned::new(v.span(), s.clone())),
        other => {
            let msg = format!("`{field}`: expected {expected}, found {}", other.type_str());
            Err(cx.src.error(v.span(), field, msg, None))
        }
    }
}

pub(super) fn is_unlimited(v: &Spanned<Value>) -> bool {
    matches!(v.get_ref(), Value::String(s) if s == "unlimited")
}

pub(super) fn unlimited_refused(cx: &Context<'_>, v: &Spanned<Value>, field: &str) -> ProfileError {
    let msg = format!("`{field}` cannot be unlimited");
    cx.src.error(
        v.span(),
        field,
        msg,
        Some("give a size such as \"64MiB\"".into()),
    )
}

pub(super) fn size(
    cx: &Context<'_>,
    v: &Spanned<Value>,
    field: &str,
    may_unlimit: bool,
) -> Res<Option<u64>> {
    if is_unlimited(v) {
        return if may_unlimit {
            Ok(None)
        } else {
            Err(unlimited_refused(cx, v, field))
        };
    }
    let parsed = match v.get_ref() {
        Value::Integer(n) => u64::try_from(*n).map_err(|_| format!("invalid size {n}: negative")),
        Value::String(s) => units::parse_size(s),
        other => Err(format!(
            "expected a size such as \"256MiB\", found {}",
            other.type_str()
        )),
    };
    match parsed {
        Ok(0) => Err(cx.src.error(
            v.span(),
            field,
            format!("`{field}` must be more than 0"),
            None,
        )),
        Ok(n) => Ok(Some(n)),
        Err(e) => Err(cx
            .src
            .error(v.span(), field, format!("`{field}`: {e}"), None)),
    }
}

pub(super) fn duration(cx: &Context<'_>, v: &Spanned<Value>, field: &str) -> Res<Option<Duration>> {
    if is_unlimited(v) {
        return Ok(None);
    }
    let parsed = match v.get_ref() {
        Value::Integer(n) => u64::try_from(*n)
            .map(Duration::from_secs)
            .map_err(|_| format!("invalid duration {n}: negative")),
        Value::Float(f) => {
            Duration::try_from_secs_f64(*f).map_err(|_| format!("invalid duration {f}"))
        }
        Value::String(s) => units::parse_duration(s),
        other => Err(format!(
            "expected a duration such as \"1.5s\", found {}",
            other.type_str()
        )),
    };
    match parsed {
        Ok(d) if d.is_zero() => Err(cx.src.error(
            v.span(),
            field,
            format!("`{field}` must be more than 0"),
            None,
        )),
        Ok(d) => Ok(Some(d)),
        Err(e) => Err(cx
            .src
            .error(v.span(), field, format!("`{field}`: {e}"), None)),
    }
}

pub(super) fn count(
    cx: &Context<'_>,
    v: &Spanned<Value>,
    field: &str,
    may_unlimit: bool,
) -> Res<Option<u64>> {
    if is_unlimited(v) {
        return if may_unlimit {
            Ok(None)
        } else {
            Err(unlimited_refused(cx, v, field))
        };
    }
    match v.get_ref() {
        Value::Integer(n) if *n > 0 => Ok(u64::try_from(*n).ok()),
        other => {
            let msg = format!("`{field}`: expected a whole number above 0, found {other}");
            Err(cx.src.error(v.span(), field, msg, None))
        }
    }
}

pub(super) fn cpus(cx: &Context<'_>, v: &Spanned<Value>) -> Res<Option<f64>> {
    if is_unlimited(v) {
        return Ok(None);
    }
    #[allow(clippy::cast_precision_loss)] // core counts are small
    let n = match v.get_ref() {
        Value::Integer(n) => *n as f64,
        Value::Float(f) => *f,
        _ => f64::NAN,
    };
    if (0.01..=4096.0).contains(&n) {
        return Ok(Some(n));
    }
    let msg = format!(
        "`limits.cpus`: expected a number of cores such as 0.5 or 2, found {}",
        v.get_ref()
    );
    Err(cx.src.error(v.span(), "limits.cpus", msg, None))
}
