//! Attacks from the security review (issue 11, runtime items), each reproduced end to end: the
//! sandbox outliving a SIGKILLed supervisor, host-side writes through planted symlinks, device
//! nodes and writable submounts under read-only binds, and supplementary groups kept by root.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Who, bin, identities, is_root, shared_dir, stockade, test_user};

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(marker) && alive(pid) {
                found.push(pid);
            }
        }
    }
    found
}

/// Whether `pid` exists and is not a zombie (a killed init waits for its new parent to reap it).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// Children of `pid` (its main thread's), from procfs.
fn children(pid: u32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn spawn(who: Who, args: &[&str]) -> Child {
    let mut cmd = match who {
        Who::Me => Command::new(bin()),
        Who::User => {
            let (uid, gid) = test_user().expect("test user");
            let mut c = Command::new("setpriv");
            c.args([
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".into(),
                "--".into(),
                bin().into(),
            ]);
            c.env_remove("XDG_RUNTIME_DIR");
            c
        }
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stockade")
}

/// SIGKILL the supervisor (the `stockade` process itself, not setpriv) and check that neither the
/// payload nor the sandbox's init survives 100 ms later.
fn kill_and_check(who: Who, mut child: Child, marker: &str, what: &str) {
    // Under setpriv the supervisor is setpriv's exec'd image: the same pid.
    let supervisor = child.id();
    let inits = children(supervisor);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(supervisor).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    let killed = Instant::now();
    // The kernel needs a moment to deliver the death signal and tear the namespaces down (about
    // a millisecond when idle); the bound here is a sanity bound for a loaded CI machine.
    let (mut survivors, mut inits_left);
    loop {
        survivors = processes_with(marker);
        inits_left = inits
            .iter()
            .copied()
            .filter(|p| alive(*p))
            .collect::<Vec<i32>>();
        if (survivors.is_empty() && inits_left.is_empty())
            || killed.elapsed() > Duration::from_secs(3)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for pid in survivors.iter().chain(&inits_left) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(
        survivors.is_empty() && inits_left.is_empty(),
        "{who:?}, {what}: {} ms after the supervisor's SIGKILL the payload {survivors:?} / init {inits_left:?} still ran",
        killed.elapsed().as_millis()
    );
    // A sandbox released just before the kill must not start its payload later either.
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        processes_with(marker).is_empty(),
        "{who:?}, {what}: a payload started after the supervisor died"
    );
}

#[test]
fn the_sandbox_dies_with_a_sigkilled_supervisor() {
    let mut n = 0;
    let mut killed_with_groups = Vec::new();
    for who in identities() {
        // With cgroup limits (root on this host) and without.
        let limit_sets: Vec<Vec<&str>> = if who == Who::Me && is_root() {
            vec![vec![], vec!["--memory", "256MiB", "--pids", "64"]]
        } else {
            vec![vec![]]
        };
        for limits in &limit_sets {
            // Kill points during set-up (delays after spawn), then while the payload runs.
            for delay_ms in [0u64, 2, 5, 10, 25, 1_000] {
                n += 1;
                let marker = format!("{}.{n}{}", 700 + n, std::process::id() % 1000);
                let script = format!("echo started; exec sleep {marker}");
                let mut args = vec!["run", "--wall-time", "60s"];
                args.extend(limits.iter().copied());
                args.extend(["--", "sh", "-c", &script]);
                let mut child = spawn(who, &args);
                let what = if delay_ms < 1_000 {
                    std::thread::sleep(Duration::from_millis(delay_ms));
                    format!("{delay_ms} ms into set-up, limits {limits:?}")
                } else {
                    let mut line = String::new();
                    BufReader::new(child.stdout.as_mut().unwrap())
                        .read_line(&mut line)
                        .unwrap();
                    assert_eq!(line, "started\n", "{who:?}: the payload did not start");
                    format!("while the payload runs, limits {limits:?}")
                };
                let supervisor = child.id();
                kill_and_check(who, child, &format!("sleep {marker}"), &what);
                if !limits.is_empty() {
                    killed_with_groups.push(supervisor);
                }
            }
        }
    }
    // The groups of the killed supervisors are reaped by the next start that uses cgroups.
    if !killed_with_groups.is_empty() {
        let out = stockade(Who::Me, &["run", "--memory", "64MiB", "--", "true"], None);
        assert!(out.status.success());
        let left = sandbox_groups()
            .into_iter()
            .filter(|g| {
                killed_with_groups.iter().any(|pid| {
                    g.file_name().is_some_and(|n| {
                        n.to_string_lossy().starts_with(&format!("sandbox-{pid}-"))
                    })
                })
            })
            .collect::<Vec<_>>();
        assert!(
            left.is_empty(),
            "groups of killed supervisors left: {left:?}"
        );
    }
}

/// Every `sandbox-*` cgroup directory under our own cgroups (all hierarchies).
fn sandbox_groups() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for line in mine.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrl), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let mount = match ctrl {
            "" => "/sys/fs/cgroup/unified".to_string(),
            c if c.starts_with("name=") => continue,
            c => format!("/sys/fs/cgroup/{}", c.split(',').next().unwrap_or(c)),
        };
        let mut stack = vec![PathBuf::from(mount).join(path.trim_start_matches('/'))];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    if entry.file_name().to_string_lossy().starts_with("sandbox-") {
                        found.push(entry.path());
                    }
                    stack.push(entry.path());
                }
            }
        }
    }
    found
}

/// A world-writable host directory for a writable bind, and a victim file and directory outside
/// it that the sandbox's outer uid could write if a host-side write followed a planted link.
struct SymlinkScene {
    dir: PathBuf,
    bind: PathBuf,
    victim_file: PathBuf,
    victim_dir: PathBuf,
    profile: PathBuf,
    source: PathBuf,
}

fn symlink_scene(name: &str) -> SymlinkScene {
    let dir = shared_dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let bind = dir.join("bind");
    let victim_dir = dir.join("victim-dir");
    let victim_file = dir.join("victim-file");
    for d in [&dir, &bind, &victim_dir] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    std::fs::write(&victim_file, "host data\n").unwrap();
    std::fs::set_permissions(&victim_file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let profile = dir.join("writable.toml");
    std::fs::write(
        &profile,
        format!(
            "description = \"sh with a writable bind\"\n\n[run]\ncommand = [\"sh\"]\n\n[[rootfs.mounts]]\nsource = {:?}\ntarget = \"/sandbox/w\"\nwritable = true\n",
            bind.display().to_string()
        ),
    )
    .unwrap();
    let source = dir.join("payload.txt");
    std::fs::write(&source, "written by the next run\n").unwrap();
    std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o644)).unwrap();
    SymlinkScene {
        dir,
        bind,
        victim_file,
        victim_dir,
        profile,
        source,
    }
}

#[test]
fn copy_ins_never_follow_links_planted_by_an_earlier_run() {
    for who in identities() {
        let s = symlink_scene(&format!("symlink-{who:?}"));
        let profile = s.profile.to_str().unwrap();
        // Run 1 plants links in the writable bind, pointing at the host victims.
        let plant = format!(
            "ln -s {} /sandbox/w/x && ln -s {} /sandbox/w/d && echo planted",
            s.victim_file.display(),
            s.victim_dir.display()
        );
        let out = stockade(
            who,
            &["run", "--profile", profile, "--", "-c", &plant],
            None,
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "planted\n",
            "{who:?}: run 1 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(s.bind.join("x").is_symlink());
        // Run 2 and 3 copy a file onto the planted link and through the planted directory link.
        for target in ["/sandbox/w/x", "/sandbox/w/d/planted"] {
            let copy = format!("{}:{target}", s.source.display());
            let out = stockade(
                who,
                &[
                    "run",
                    "--profile",
                    profile,
                    "--copy-in",
                    &copy,
                    "--",
                    "-c",
                    "true",
                ],
                None,
            );
            assert_eq!(
                out.status.code(),
                Some(125),
                "{who:?}: a copy-in onto {target} must fail set-up, not write through the link"
            );
        }
        assert_eq!(
            std::fs::read_to_string(&s.victim_file).unwrap(),
            "host data\n",
            "{who:?}: the host file was overwritten through a planted symlink"
        );
        assert!(
            !s.victim_dir.join("planted").exists(),
            "{who:?}: a file was created in a host directory through a planted symlink"
        );
        // An ordinary copy-in into the same writable bind still works.
        let copy = format!("{}:/sandbox/w/fresh.txt", s.source.display());
        let out = stockade(
            who,
            &[
                "run",
                "--profile",
                profile,
                "--copy-in",
                &copy,
                "--",
                "-c",
                "cat /sandbox/w/fresh.txt",
            ],
            None,
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "written by the next run\n"
        );
        let _ = std::fs::remove_dir_all(&s.dir);
    }
}

/// Run `stockade ARGS` inside a private mount namespace where `script` has prepared the host side
/// (so a tmpfs mounted for the test never shows on the real host).
fn in_private_mount_ns(script: &str, args: &[&str]) -> std::process::Output {
    let mut full = format!("{script} && exec {}", bin());
    for a in args {
        full.push_str(&format!(" '{}'", a.replace('\'', "'\\''")));
    }
    Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &full])
        .stdin(Stdio::null())
        .output()
        .expect("unshare")
}

#[test]
fn read_only_binds_are_nodev_nosuid_and_read_only_below_submounts() {
    if !is_root() {
        eprintln!("skipped: planting a device node and a host submount needs root");
        return;
    }
    let src = shared_dir().join("nodev-src");
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let node = src.join("null-node");
    // A 0644 character device (1,3 is /dev/null: harmless, but any node would be reachable).
    let made = Command::new("mknod")
        .args(["-m", "0644"])
        .arg(&node)
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(made.success());
    let bind = format!("{}:/mnt", src.display());
    let probe = "cat /mnt/null-node && echo dev=open || echo dev=refused; \
                 touch /mnt/sub/f 2>/dev/null && echo sub=writable || echo sub=readonly; \
                 grep ' /mnt ' /proc/self/mountinfo";
    let out = in_private_mount_ns(
        &format!("mount -t tmpfs tmpfs {}", src.join("sub").display()),
        &["run", "--ro-bind", &bind, "--", "sh", "-c", probe],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("dev=refused"),
        "a device node under a bind must not open: {stdout}"
    );
    assert!(
        stdout.contains("sub=readonly"),
        "a submount under a read-only bind must be read-only: {stdout}"
    );
    let mnt = stdout
        .lines()
        .find(|l| l.contains(" /mnt "))
        .unwrap_or_default();
    for flag in ["ro", "nosuid", "nodev"] {
        assert!(
            mnt.split_whitespace()
                .nth(5)
                .is_some_and(|opts| opts.split(',').any(|o| o == flag)),
            "/mnt lacks {flag}: {mnt}"
        );
    }
    let _ = std::fs::remove_dir_all(&src);
}

#[test]
fn root_s_supplementary_groups_do_not_enter_the_sandbox() {
    if !is_root() {
        eprintln!("skipped: only root can hold groups it may drop");
        return;
    }
    let out = Command::new("setpriv")
        .args([
            "--groups=0,4,42",
            "--",
            bin(),
            "run",
            "--",
            "grep",
            "^Groups:",
            "/proc/self/status",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim_end(),
        "Groups:",
        "the sandbox kept supplementary groups"
    );
}

#[test]
fn the_wall_clock_does_not_wait_for_a_reader() {
    // 512 KiB of output into a stdout pipe nobody reads, then a long sleep: the supervisor must
    // not block on its copy of the output, and the deadline must still kill the sleep.
    let marker = format!("{}.{}", 900, std::process::id() % 1000);
    let report = shared_dir().join("slow-reader.json");
    let script = format!("head -c 524288 /dev/zero; exec sleep {marker}");
    let mut child = Command::new(bin())
        .args(["run", "--wall-time", "1s", "--report"])
        .arg(&report)
        .args(["--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // Well past the deadline, still without reading a byte.
    std::thread::sleep(Duration::from_millis(2_500));
    // The supervisor's own command line carries the marker too: it is still running.
    let supervisor = i32::try_from(child.id()).unwrap();
    let survivors: Vec<i32> = processes_with(&format!("sleep {marker}"))
        .into_iter()
        .filter(|p| *p != supervisor)
        .collect();
    // Now read, so the CLI can hand over its queue and finish.
    let mut sink = Vec::new();
    std::io::Read::read_to_end(child.stdout.as_mut().unwrap(), &mut sink).unwrap();
    let status = child.wait().unwrap();
    assert!(
        survivors.is_empty(),
        "the payload outlived its 1 s wall limit by {} ms while stdout was not read",
        started.elapsed().as_millis()
    );
    assert_eq!(status.code(), Some(124));
    assert_eq!(sink.len(), 524_288, "queued output is delivered once read");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(v["status"], "timeout_wall");
}

#[test]
fn without_a_pids_controller_rlimit_nproc_holds_the_task_count() {
    // The none backend with --best-effort cgroup: RLIMIT_NPROC stands in for pids.max, counted
    // in the sandbox's own user namespace.
    for who in identities() {
        let out = stockade(
            who,
            &[
                "run",
                "--json",
                "--cgroup-backend",
                "none",
                "--pids",
                "8",
                "--best-effort",
                "cgroup",
                "--",
                "python3",
                "-c",
                "import os, time\nn = 0\ntry:\n    for i in range(20):\n        if os.fork() == 0:\n            time.sleep(5)\n            os._exit(0)\n        n += 1\nexcept BlockingIOError:\n    pass\nprint(f'started={n}')",
            ],
            None,
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let stdout = v["stdout"]["data"].as_str().unwrap_or_default();
        let started: u32 = stdout
            .trim()
            .strip_prefix("started=")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{who:?}: {v}"));
        // init + python + the children: at most 8 tasks, so at most 6 children.
        assert!(
            (1..=6).contains(&started),
            "{who:?}: {started} background tasks started under an 8-task limit"
        );
        assert_eq!(v["enforced"]["cgroup"]["pids_limit_enforced"], false);
    }
}

#[test]
fn uptime_and_boot_time_are_the_sandbox_s_own() {
    if !std::path::Path::new("/proc/self/ns/time").exists() {
        eprintln!("skipped: this kernel has no time namespaces");
        return;
    }
    let host: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    for who in identities() {
        let v = common::verdict(who, &["--", "cat", "/proc/uptime"]);
        let inside: f64 = common::stdout_of(&v)
            .split_whitespace()
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("{who:?}: {v}"));
        assert!(
            inside < 60.0 && inside < host,
            "{who:?}: uptime inside {inside} s, host {host} s"
        );
        assert_eq!(v["enforced"]["timens"], true, "{who:?}");
    }
}

/// The `stockade` subuid range of this host, if any (scripts/test configures one).
fn stockade_subuid_range() -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/etc/subuid").ok()?;
    text.lines().find_map(|l| {
        let mut p = l.split(':');
        (p.next()? == "stockade")
            .then(|| Some((p.next()?.parse().ok()?, p.next()?.parse().ok()?)))?
    })
}

#[test]
fn concurrent_sandboxes_of_root_get_their_own_outer_uid() {
    if !is_root() {
        eprintln!("skipped: outer ids are leased only when stockade runs as root");
        return;
    }
    let marker = format!("{}.{}", 800, std::process::id() % 1000);
    let script = format!("echo started; exec sleep {marker}");
    let mut children: Vec<Child> = (0..2)
        .map(|_| {
            spawn(
                Who::Me,
                &[
                    "run",
                    "--json",
                    "--wall-time",
                    "20s",
                    "--",
                    "sh",
                    "-c",
                    &script,
                ],
            )
        })
        .collect();
    // Both are running at once.
    let sleeping = || -> Vec<i32> {
        processes_with(&format!("sleep {marker}"))
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while sleeping().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let payloads = sleeping();
    assert_eq!(payloads.len(), 2, "both payloads run: {payloads:?}");
    // The host's nobody may not signal them.
    for pid in &payloads {
        let out = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "kill",
                "-0",
            ])
            .arg(pid.to_string())
            .output()
            .unwrap();
        let range = stockade_subuid_range();
        assert_eq!(
            out.status.success(),
            range.is_none(),
            "nobody signalling a sandbox (subuid range {range:?})"
        );
    }
    let mut uids = Vec::new();
    for pid in &payloads {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    for child in children.iter_mut() {
        let mut json = String::new();
        std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut json).unwrap();
        child.wait().unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        uids.push(v["enforced"]["outer_uid"].as_u64().unwrap());
    }
    match stockade_subuid_range() {
        Some((start, count)) => {
            assert_ne!(uids[0], uids[1], "concurrent sandboxes share an outer uid");
            for uid in &uids {
                assert!((u64::from(start)..u64::from(start) + u64::from(count)).contains(uid));
            }
        }
        None => assert_eq!(uids, vec![65534, 65534]),
    }
}

#[test]
fn a_private_pty_works_and_its_line_discipline_is_locked() {
    for who in identities() {
        let v = common::verdict(
            who,
            &[
                "--",
                "python3",
                "-c",
                "import os\nprint(os.listdir('/dev/pts'))\nm, s = os.openpty()\nos.write(m, b'hi\\n')\nprint(os.ttyname(s), os.read(s, 10))",
            ],
        );
        assert_eq!(v["status"], "ok", "{who:?}: {v}");
        // A new devpts instance: none of the host's terminals, and the first pty is number 0.
        assert_eq!(
            common::stdout_of(&v),
            "['ptmx']\n/dev/pts/0 b'hi\\n'\n",
            "{who:?}"
        );
        // N_GSM (21) would autoload a module with a history of CVEs: the attempt kills.
        let v = common::verdict(
            who,
            &[
                "--",
                "python3",
                "-c",
                "import os, fcntl, termios, struct\nm, s = os.openpty()\nfcntl.ioctl(s, termios.TIOCSETD, struct.pack('i', 21))\nprint('set')",
            ],
        );
        assert_eq!(v["status"], "seccomp_violation", "{who:?}: {v}");
        assert_eq!(v["seccomp_violation"]["syscall"], "ioctl", "{who:?}");
        assert!(!common::stdout_of(&v).contains("set"));
    }
}

#[test]
fn module_autoloading_sockets_and_notification_pipes_are_refused_politely() {
    let probe = "import os, socket, errno\n\
                 try:\n    os.pipe2(0x80)\n    print('pipe2=ok')\nexcept OSError as e:\n    print('pipe2=' + errno.errorcode[e.errno])\n\
                 for proto in (6, 132, 33):\n    try:\n        socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto != 33 else 6, proto).close()\n        print(f'proto{proto}=ok')\n    except OSError as e:\n        print(f'proto{proto}=' + errno.errorcode[e.errno])\n\
                 r, w = os.pipe2(os.O_CLOEXEC)\nprint('plain_pipe=ok')";
    for who in identities() {
        let v = common::verdict(
            who,
            &["--network", "loopback", "--", "python3", "-c", probe],
        );
        assert_eq!(v["status"], "ok", "{who:?}: {v}");
        assert_eq!(
            common::stdout_of(&v),
            "pipe2=ENOPKG\nproto6=ok\nproto132=EAFNOSUPPORT\nproto33=EAFNOSUPPORT\nplain_pipe=ok\n",
            "{who:?}"
        );
        let denied: Vec<&str> = v["seccomp_denied"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["syscall"].as_str())
            .collect();
        assert!(
            denied.contains(&"pipe2") && denied.contains(&"socket"),
            "{v}"
        );
    }
}
