//! What one request may ask for, checked before anything is launched: the file set must be one
//! the work dir can hold (so a request can never make sandbox set-up fail and trip the circuit
//! breaker), the command line and environment must fit what `execve(2)` accepts, and every number
//! from the wire stays below a service ceiling even where the profile sets no limit. Counts are
//! also capped while a body is parsed (`bounded_vec`, `bounded_map`), before one allocation per
//! item is made. docs/service.md ("Request limits") lists the values.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::marker::PhantomData;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::error::{ApiError, Code};
use crate::policy::{Policy, SANDBOX_DIR};

/// Files per request.
pub const MAX_FILES: usize = 1000;
/// Arguments after the program, and strings in the final command line.
pub const MAX_ARGS: usize = 4096;
/// Environment variables a request may add.
pub const MAX_ENV: usize = 256;
/// One argument or environment entry: Linux's `MAX_ARG_STRLEN` (32 pages); `execve` fails with
/// E2BIG beyond it.
pub const MAX_ARG_BYTES: usize = 32 * 4096;
/// The whole command line plus environment (strings, NULs and pointers): half of the 2 MiB that
/// `execve` allows under the default 8 MiB stack (a quarter of `RLIMIT_STACK`).
pub const MAX_EXEC_BYTES: usize = 1 << 20;
/// One path component (`NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// A whole path inside the sandbox, with its terminating NUL (`PATH_MAX`).
pub const PATH_MAX: usize = 4096;
/// Wall and CPU time a request may ask for where the profile sets no maximum.
pub const MAX_TIME: Duration = Duration::from_secs(24 * 3600);
/// Memory a request may ask for where the profile sets no maximum.
pub const MAX_MEMORY: u64 = 1 << 40;
/// Tasks a request may ask for where the profile sets no maximum (the kernel's `pid_max` limit).
pub const MAX_PIDS: u64 = 1 << 22;
/// The smallest CPU bandwidth the kernel accepts (`cpu.max` quota of 1 ms per second).
pub const MIN_CPUS: f64 = 0.001;

const PAGE: u64 = 4096;
/// Inodes of the work dir kept free for the payload and the profile's own copies.
const INODE_RESERVE: u64 = 16;

fn too_large(msg: String) -> ApiError {
    ApiError::new(Code::RequestTooLarge, msg)
}

fn bad_files(msg: String) -> ApiError {
    ApiError::new(Code::InvalidFiles, msg)
}

/// The name of a work file as the request gave it (its path below the work dir).
fn shown(path: &Path) -> String {
    path.strip_prefix(SANDBOX_DIR)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Inodes of a work dir of `size` bytes: the `nr_inodes` the mount plan gives the tmpfs
/// (src/fs.rs `tmpfs`: one per 4 KiB, at least 1024).
fn work_dir_inodes(size: u64) -> u64 {
    (size / PAGE).max(1024)
}

/// Check that `files` (absolute sandbox paths and contents) can be laid out in the work dir of
/// `policy` exactly as given: each path plain and below the work dir, within NAME_MAX and
/// PATH_MAX, no duplicates, no file that is also another one's directory, nothing on top of the
/// profile's own copies and binds, and everything within the work dir's bytes and inodes.
pub fn check_files(files: &[(PathBuf, Vec<u8>)], policy: &Policy) -> Result<(), ApiError> {
    // The run-time guard's own files (`crate::guard`) come from the profile, not the request;
    // on the host root they live outside /sandbox. In a prepared rootfs they share the work dir,
    // so there they count and collide like the request's.
    let files: Vec<&(PathBuf, Vec<u8>)> = files
        .iter()
        .filter(|(p, _)| !crate::guard::is_guard_file(p, policy) || p.starts_with(SANDBOX_DIR))
        .collect();
    if files.len() > MAX_FILES {
        let msg = format!(
            "{} files given; at most {MAX_FILES} are accepted",
            files.len()
        );
        return Err(too_large(msg));
    }
    let mut paths = HashSet::with_capacity(files.len());
    for (path, _) in &files {
        check_path(path)?;
        if !paths.insert(path.as_path()) {
            let msg = format!("file `{}` is given twice", shown(path));
            return Err(bad_files(msg));
        }
    }
    let mut dirs: HashSet<&Path> = HashSet::new();
    for (path, _) in &files {
        for dir in path.ancestors().skip(1) {
            if dir == Path::new(SANDBOX_DIR) {
                break;
            }
            if paths.contains(dir) {
                let msg = format!(
                    "`{}` is a file and also the directory of `{}`",
                    shown(dir),
                    shown(path)
                );
                return Err(bad_files(msg));
            }
            dirs.insert(dir);
        }
    }
    check_profile_paths(&paths, &dirs, policy)?;
    check_space(&files, dirs.len(), policy)
}

fn check_path(path: &Path) -> Result<(), ApiError> {
    let Ok(rest) = path.strip_prefix(SANDBOX_DIR) else {
        return Err(bad_files(format!(
            "file `{}` is not inside {SANDBOX_DIR}",
            path.display()
        )));
    };
    let bytes = path.as_os_str().as_encoded_bytes();
    let plain = rest.components().all(|c| matches!(c, Component::Normal(_)));
    if rest.as_os_str().is_empty() || !plain || bytes.contains(&0) {
        let msg = format!(
            "file name `{}` must be a relative path without `.`, `..` or NUL",
            shown(path)
        );
        return Err(bad_files(msg));
    }
    if bytes.len() >= PATH_MAX {
        let msg = format!(
            "file name `{}…` is {} bytes as a path under {SANDBOX_DIR}; paths are limited to {} bytes",
            shown(path).chars().take(40).collect::<String>(),
            bytes.len(),
            PATH_MAX - 1
        );
        return Err(bad_files(msg));
    }
    if let Some(long) = rest.components().find(|c| c.as_os_str().len() > NAME_MAX) {
        let msg = format!(
            "a component of file name `{}…` is {} bytes; components are limited to {NAME_MAX}",
            shown(path).chars().take(40).collect::<String>(),
            long.as_os_str().len()
        );
        return Err(bad_files(msg));
    }
    Ok(())
}

/// Request files may not replace a file the profile copies in, nor land in or on a bind mount.
fn check_profile_paths(
    paths: &HashSet<&Path>,
    dirs: &HashSet<&Path>,
    policy: &Policy,
) -> Result<(), ApiError> {
    for c in &policy.copy_in {
        let t = c.target.as_path();
        if paths.contains(t) || dirs.contains(t) {
            let msg = format!("`{}` is a file the profile provides", shown(t));
            return Err(bad_files(msg));
        }
    }
    for m in &policy.mounts {
        if let Some(p) = paths.iter().find(|p| p.starts_with(&m.target)) {
            let msg = format!(
                "`{}` lies in `{}`, a directory the profile mounts",
                shown(p),
                shown(&m.target)
            );
            return Err(bad_files(msg));
        }
    }
    Ok(())
}

fn check_space(
    files: &[&(PathBuf, Vec<u8>)],
    dirs: usize,
    policy: &Policy,
) -> Result<(), ApiError> {
    let size = policy.limits.sandbox_size;
    let dirs = u64::try_from(dirs).unwrap_or(u64::MAX);
    let count = u64::try_from(files.len()).unwrap_or(u64::MAX);
    let inodes = count.saturating_add(dirs);
    let room = work_dir_inodes(size).saturating_sub(INODE_RESERVE);
    if inodes > room {
        let msg = format!(
            "{count} files in {dirs} directories need {inodes} inodes; the work dir has {room}"
        );
        return Err(too_large(msg));
    }
    // tmpfs charges whole pages; each directory at least one.
    let pages = |len: usize| u64::try_from(len).unwrap_or(u64::MAX).div_ceil(PAGE);
    let used = files
        .iter()
        .map(|(_, data)| pages(data.len()))
        .fold(dirs, u64::saturating_add)
        .saturating_mul(PAGE);
    if used > size {
        let msg = format!(
            "the files take {used} bytes in the work dir (whole 4 KiB pages); it holds {size}"
        );
        return Err(too_large(msg));
    }
    Ok(())
}

/// What a request decided about its sandbox's set-up, kept to judge a set-up failure.
#[derive(Debug, Clone, Default)]
pub struct Blame {
    /// The work files and their directories, as sandbox paths.
    paths: Vec<String>,
    /// The request lowered the memory or task limit.
    tightened: bool,
}

/// Set-up steps that only the host can make fail; a request that tightened its limits is
/// blamed for any other failure.
const HOST_STEPS: [&str; 4] = ["clone3", "cgroup", "pivot_root", "landlock"];

impl Blame {
    pub fn new(files: &[(PathBuf, Vec<u8>)], tightened: bool) -> Self {
        let mut paths = HashSet::new();
        for (path, _) in files {
            for p in path.ancestors() {
                if p == Path::new(SANDBOX_DIR) || !paths.insert(p.display().to_string()) {
                    break;
                }
            }
        }
        Blame {
            paths: paths.into_iter().collect(),
            tightened,
        }
    }

    /// Whether the set-up failure `message` is the request's doing: it names a path the request
    /// created, or the request lowered its limits and the failure is not in a step only the host
    /// controls. Such failures never count towards the circuit breaker.
    pub fn caused_by_request(&self, message: &str) -> bool {
        let names_ours = self.paths.iter().any(|p| names_path(message, p));
        let lower = message.to_ascii_lowercase();
        let host_step = HOST_STEPS.iter().any(|s| lower.contains(s));
        names_ours || (self.tightened && !host_step)
    }
}

/// Whether `message` names `path` itself (not a longer path it is a prefix of, as `/sandbox/d`
/// is of `/sandbox/data.txt`).
fn names_path(message: &str, path: &str) -> bool {
    message.match_indices(path).any(|(i, _)| {
        message
            .get(i + path.len()..)
            .and_then(|rest| rest.chars().next())
            .is_none_or(|c| !(c.is_alphanumeric() || "._-".contains(c)))
    })
}

/// Check the final command line and environment against what `execve` accepts.
pub fn check_exec(argv: &[String], env: &[(String, String)]) -> Result<(), ApiError> {
    if argv.len() > MAX_ARGS {
        let msg = format!(
            "the command has {} arguments; at most {MAX_ARGS}",
            argv.len()
        );
        return Err(too_large(msg));
    }
    if let Some(long) = argv.iter().position(|a| a.len() >= MAX_ARG_BYTES) {
        let msg = format!(
            "argument {long} of the command is {} bytes; one argument (or code passed as one) is limited to {} bytes",
            argv[long].len(),
            MAX_ARG_BYTES - 1
        );
        return Err(too_large(msg));
    }
    if let Some((k, v)) = env
        .iter()
        .find(|(k, v)| k.len() + v.len() + 1 >= MAX_ARG_BYTES)
    {
        let msg = format!(
            "environment variable `{}` is {} bytes; one entry is limited to {} bytes",
            k.chars().take(40).collect::<String>(),
            k.len() + v.len() + 1,
            MAX_ARG_BYTES - 1
        );
        return Err(too_large(msg));
    }
    let ptr = std::mem::size_of::<usize>();
    let total = argv.iter().map(|a| a.len() + 1 + ptr).sum::<usize>()
        + env
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2 + ptr)
            .sum::<usize>();
    if total > MAX_EXEC_BYTES {
        let msg = format!(
            "the command line and environment take {total} bytes; at most {MAX_EXEC_BYTES}"
        );
        return Err(too_large(msg));
    }
    Ok(())
}

/// A duration from a number of milliseconds off the wire: finite, non-negative, at most `max`.
pub fn millis(field: &str, ms: f64, max: Duration) -> Result<Duration, ApiError> {
    let d = Duration::try_from_secs_f64(ms / 1000.0).map_err(|_| {
        ApiError::new(
            Code::InvalidRequest,
            format!("`{field}` must be a non-negative number of milliseconds"),
        )
    })?;
    if d > max {
        return Err(ApiError::new(
            Code::LimitExceedsProfile,
            format!("`{field}` {ms} exceeds the maximum of {}", max.as_millis()),
        ));
    }
    Ok(d)
}

/// Deserialize a list of at most `N` items, refusing the `N+1`th before it is stored.
fn bounded_vec<'de, D, T, const N: usize>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T, const N: usize>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for V<T, N> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of at most {N} items")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
            while let Some(item) = seq.next_element()? {
                if out.len() == N {
                    return Err(de::Error::custom(format!(
                        "more than {N} items (the limit)"
                    )));
                }
                out.push(item);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V::<T, N>(PhantomData))
}

/// Values in a JSON body parsed as a free-form tree (Piston's lenient fields): enough for
/// `MAX_FILES` files of a few fields and `MAX_ARGS` arguments.
pub const MAX_JSON_VALUES: usize = 16 << 10;

/// An upper bound on the number of values in a JSON text, counted without allocating: every value
/// after the first follows a `,` or opens a container, outside strings. A tree of many tiny values
/// costs tens of bytes per body byte (each is a 32-byte node, each string its own allocation), so
/// the count is checked before such a tree is built.
pub fn json_values(text: &[u8]) -> usize {
    let mut count = 1;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b',' | b'[' | b'{' => count += 1,
                _ => {}
            }
        }
    }
    count
}

/// `args` of a request body: at most `MAX_ARGS` strings.
pub fn de_args<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    bounded_vec::<D, String, MAX_ARGS>(d)
}

/// `files` of a request body: at most `MAX_FILES` entries.
pub fn de_files<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    bounded_vec::<D, T, MAX_FILES>(d).map(Some)
}

/// `env` of a request body: at most `MAX_ENV` variables.
pub fn de_env<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    bounded_map::<D, String, MAX_ENV>(d)
}

/// Deserialize a map of at most `N` entries, refusing the `N+1`th before it is stored.
fn bounded_map<'de, D, V, const N: usize>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct M<V, const N: usize>(PhantomData<V>);
    impl<'de, V: Deserialize<'de>, const N: usize> Visitor<'de> for M<V, N> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "an object of at most {N} entries")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((k, v)) = map.next_entry()? {
                if out.len() == N {
                    return Err(de::Error::custom(format!(
                        "more than {N} entries (the limit)"
                    )));
                }
                out.insert(k, v);
            }
            Ok(out)
        }
    }
    d.deserialize_map(M::<V, N>(PhantomData))
}

#[cfg(test)]
#[path = "limits_tests.rs"]
pub(super) mod tests;
