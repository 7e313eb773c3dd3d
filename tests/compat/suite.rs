//! The workloads of the compatibility suite: CPython's regression tests module by module, the
//! data-science stack, compiled languages and node. docs/compat.md says how to add one.

use super::workload::{Check, Workload};

/// Limits for CPython's regression tests: big enough for the slowest module and its subprocesses,
/// so that only a real incompatibility, never a limit, makes a run differ. The file size is
/// RLIM_INFINITY (u64::MAX bytes), as bare: test_io, test_mmap and test_resource write sparse files
/// past 4 GiB and check that RLIMIT_FSIZE is unlimited. The CPU time is above the 1,000,000 s that
/// test_resource sets RLIMIT_CPU to (raising a hard limit needs CAP_SYS_RESOURCE); the wall time
/// is the real bound. `--open-files` is added per run: the bare run's own RLIMIT_NOFILE.
#[rustfmt::skip]
const REGRTEST_LIMITS: &[&str] = &[
    "--wall-time", "10m", "--cpu-time", "300h", "--memory", "2GiB", "--pids", "512",
    "--tmp-size", "1GiB", "--sandbox-size", "256MiB", "--output", "64MiB",
    "--file-size", "18446744073709551615",
];

/// Compilers and the JVM need more than the production preset's 256 MiB and 64 tasks; the c, cpp
/// and java profiles give their compile stage limits of this size.
#[rustfmt::skip]
const TOOLCHAIN_LIMITS: &[&str] = &[
    "--wall-time", "3m", "--cpu-time", "5m", "--memory", "2GiB", "--pids", "256",
    "--tmp-size", "512MiB",
];

/// Only the time limits are raised for scripts (the host is shared and may be loaded); memory,
/// tasks and the rest stay the profile's, because the profile has to fit the workload.
const SCRIPT_LIMITS: &[&str] = &["--wall-time", "2m", "--cpu-time", "2m"];

/// CPython regression-test modules, longest first so that two workers finish together, with
/// extra regrtest arguments (`-m PATTERN` keeps a subset).
#[rustfmt::skip]
const REGRTEST_MODULES: &[(&str, &[&str])] = &[
    ("test_signal", &[]),
    ("test_io", &[]),
    ("test_subprocess", &[]),
    ("test_asyncio.test_subprocess", &[]),
    ("test_faulthandler", &[]),
    // Processes, queues, pools, connections, locks and shared memory through the forkserver; the
    // whole module takes two minutes and repeats the same calls in other combinations.
    (
        "test_multiprocessing_forkserver",
        &[
            "-m", "WithProcessesTestProcess", "-m", "WithProcessesTestQueue",
            "-m", "WithProcessesTestPool", "-m", "WithProcessesTestConnection",
            "-m", "WithProcessesTestLock", "-m", "WithProcessesTestSharedMemory",
        ],
    ),
    ("test_selectors", &[]),
    ("test_threading", &[]),
    ("test_poll", &[]),

    ("test_pathlib", &[]),
    ("test_shutil", &[]),
    ("test_tempfile", &[]),
    // TestSendfile serves over loopback TCP, which `network = "none"` denies.
    ("test_os", &["-i", "*TestSendfile*"]),
    ("test_zlib", &[]),
    ("test_posix", &[]),
    ("test_time", &[]),
    ("test_select", &[]),
    ("test_hashlib", &[]),
    // The sendfile tests stream over loopback TCP, which `network = "none"` denies.
    ("test_asyncio.test_unix_events", &["-i", "*SockSendfileTests*"]),
    ("test_resource", &[]),
    ("test_uuid", &[]),
    ("test_mmap", &[]),
    ("test_fileio", &[]),
    ("test_pty", &[]),
    // The AF_UNIX parts: socket pairs, Unix stream sockets, fd passing (SCM_RIGHTS).
    ("test_socket", &["-m", "*Unix*", "-m", "*SCMRights*", "-m", "*SocketPair*"]),
    ("test_fcntl", &[]),
];

pub fn all() -> Vec<Workload> {
    let mut all: Vec<Workload> = REGRTEST_MODULES
        .iter()
        .map(|(m, a)| regrtest(m, a))
        .collect();
    // test_eintr runs _test_eintr.py as one case; run directly it reports each of its 24 cases
    // (signals interrupting sleep, wait, read/write, select, poll, epoll, flock, open of a FIFO).
    // It goes by its time (10 s), after test_poll.
    let mut eintr = regrtest("test_eintr", &[]);
    eintr.args = ["-m", "unittest", "-v", "test._test_eintr"]
        .map(String::from)
        .to_vec();
    let after_poll = all
        .iter()
        .position(|w| w.name == "test_poll")
        .map_or(0, |i| i + 1);
    all.insert(after_poll, eintr);
    for script in ["numeric.py", "pandas_groupby.py", "plot.py"] {
        all.push(python_script(script, "python"));
        all.push(python_script(script, "data_science"));
        all.push(python_with_preset(script, "data_science"));
    }
    all.push(python_script("process_local.py", "python"));
    all.push(python_script("net_handled.py", "python"));
    for script in [
        "crypto.js",
        "zlib.js",
        "worker_threads.js",
        "child_process.js",
        "fs.js",
        "os_info.js",
        "net_handled.js",
    ] {
        all.push(node_script(script));
    }
    all.push(toolchain(
        "c_gcc",
        "native/hello.c",
        "gcc -O1 -Wall -pthread -o hello hello.c && ./hello",
    ));
    all.push(toolchain(
        "cpp_gxx",
        "native/hello.cpp",
        "g++ -O1 -Wall -std=c++17 -pthread -o hello hello.cpp && ./hello",
    ));
    all.push(toolchain(
        "java_javac",
        "native/Main.java",
        "javac -d classes Main.java && java -cp classes Main",
    ));
    all.push(toolchain(
        "java_source",
        "native/Main.java",
        "java Main.java",
    ));
    all
}

fn regrtest(module: &str, extra: &[&str]) -> Workload {
    let mut args: Vec<String> = ["-m", "test", "-v", module].map(String::from).to_vec();
    args.extend(extra.iter().map(|a| a.to_string()));
    Workload {
        name: module.to_string(),
        profile: "python",
        interpreter: vec!["python3"],
        args,
        files: vec![],
        flags: strings(REGRTEST_LIMITS)
            .into_iter()
            .chain(["--open-files".into(), open_files_here().to_string()])
            .collect(),
        check: Check::Regrtest,
    }
}

/// A script under tests/compat/python; `data_science` has no interpreter of its own (today: the
/// preset as a profile), so `python3` is part of the arguments there.
fn python_script(file: &'static str, profile: &'static str) -> Workload {
    let (interpreter, mut args) = match profile {
        "python" => (vec!["python3"], vec![]),
        _ => (vec![], vec!["python3".to_string()]),
    };
    args.push(file.to_string());
    Workload {
        name: format!("{}[{profile}]", file.trim_end_matches(".py")),
        profile,
        interpreter,
        args,
        files: vec![format!("python/{file}")],
        flags: strings(SCRIPT_LIMITS),
        check: Check::Facts,
    }
}

/// The python profile combined with a preset in one step (`--profile python --preset NAME`).
fn python_with_preset(file: &'static str, preset: &'static str) -> Workload {
    let mut w = python_script(file, "python");
    w.name = format!("{}[python+{preset}]", file.trim_end_matches(".py"));
    w.flags.extend(["--preset".to_string(), preset.to_string()]);
    w
}

fn node_script(file: &'static str) -> Workload {
    Workload {
        name: format!("node_{}", file.trim_end_matches(".js")),
        profile: "node",
        interpreter: vec!["node"],
        args: vec![file.to_string()],
        files: vec![format!("node/{file}")],
        flags: strings(SCRIPT_LIMITS),
        check: Check::Facts,
    }
}

/// Compile and run in `$TMPDIR` (`/tmp` inside) through the sh profile, as a compile profile would.
fn toolchain(name: &str, file: &'static str, build_and_run: &str) -> Workload {
    let base = file.rsplit('/').next().unwrap_or(file);
    let script = format!("cp {base} \"$TMPDIR\"/ && cd \"$TMPDIR\" && {build_and_run}");
    Workload {
        name: name.to_string(),
        profile: "sh",
        interpreter: vec!["sh"],
        args: vec!["-c".into(), script],
        files: vec![file.to_string()],
        flags: strings(TOOLCHAIN_LIMITS),
        check: Check::Facts,
    }
}

fn strings(flags: &[&str]) -> Vec<String> {
    flags.iter().map(|f| f.to_string()).collect()
}

/// This process's soft RLIMIT_NOFILE (`Max open files` in /proc/self/limits), which the bare run
/// inherits: test_subprocess and test_os behave differently below and above 1024 descriptors.
fn open_files_here() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(1024)
}
