//! The seccomp policy as reviewed data: every allowed, checked or denied system call with a
//! one-line reason (firecracker's `resources/seccomp/*.json` "comment" habit).
//!
//! The base list is what python3, node 20 and dash/bash need with threads and subprocesses,
//! measured with `strace -f` over workloads that use threads, subprocesses, files, pipes, signals,
//! timers and sockets, then checked under the filter itself in kill mode (see docs/seccomp.md).
//! Variants of the same operation (legacy `open`/`stat` next to `openat`/`statx`) are allowed with
//! it: the path checks belong to Landlock and the read-only root, not to the syscall number.

/// An argument check on one syscall; compiled to a few BPF instructions after the number match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// `clone(flags, ...)`: allowed only when no `CLONE_NEW*` bit is set in the flags.
    CloneNoNamespace,
    /// `socket(domain, type, protocol)`: the families of the network mode, plus `AF_NETLINK`
    /// with `NETLINK_ROUTE` (read-only interface lists in the sandbox's own network namespace).
    SocketFamily,
    /// `socketpair(domain, ...)`: `AF_UNIX` only.
    SocketpairUnix,
    /// `ioctl(fd, request, ...)`: everything except the terminal-injection requests.
    IoctlNoTiocsti,
    /// `personality(persona)`: query (`0xffffffff`) or plain `PER_LINUX` only.
    PersonalityQueryOrLinux,
    /// `pipe2(fds, flags)`: any flags but `O_NOTIFICATION_PIPE`.
    Pipe2NoNotification,
}

/// `O_NOTIFICATION_PIPE` (= `O_EXCL` on x86_64): a watch-queue pipe, kernel code with a history
/// of privilege escalations (CVE-2022-0995) that no ordinary program uses.
pub(crate) const O_NOTIFICATION_PIPE: u32 = 0x80;
/// Protocols an `AF_INET`/`AF_INET6` socket may ask for in loopback mode: the default (0), TCP,
/// UDP and the ICMP echo sockets. Others (SCTP 132, DCCP 33, UDP-Lite 136, ...) would have the
/// kernel autoload their module from inside the sandbox.
pub(crate) const INET_PROTOCOLS: &[u32] = &[0, 6, 17, 1, 58];

/// `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
/// CLONE_NEWNET`. `CLONE_NEWTIME` (0x80) is not listed: for `clone(2)` that bit lies in the exit
/// signal byte (CSIGNAL), so the kernel never reads it as a namespace flag there.
pub(crate) const CLONE_NEW_MASK: u32 =
    0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000;
/// `TIOCSTI` pushes bytes into a terminal's input queue (CVE-2017-5226 in bubblewrap).
pub(crate) const TIOCSTI: u32 = 0x5412;
/// `TIOCLINUX` selection paste on a virtual console: the same injection on a VT.
pub(crate) const TIOCLINUX: u32 = 0x541C;
/// `TIOCSETD` sets a tty's line discipline: on a pty of the sandbox's own devpts it would load
/// modules such as n_gsm (CVE-2023-6546) through `dev.tty.ldisc_autoload`; nothing a payload runs
/// needs another discipline than N_TTY.
pub(crate) const TIOCSETD: u32 = 0x5423;
/// `NETLINK_ROUTE`: interface and address lists (glibc `getifaddrs`).
pub(crate) const NETLINK_ROUTE: u32 = 0;
/// `personality(0xffffffff)` returns the current persona without changing it.
pub(crate) const PERSONALITY_QUERY: u32 = 0xffff_ffff;
/// `PER_LINUX`, the only persona a payload may set.
pub(crate) const PER_LINUX: u32 = 0;

/// Always allowed, without argument checks.
#[rustfmt::skip]
pub(crate) const BASE: &[(&str, &str)] = &[
    // Descriptors and file contents.
    ("read", "read from open descriptors"),
    ("write", "write to open descriptors (stdout, pipes, files)"),
    ("readv", "vectored reads (libuv, python io)"),
    ("writev", "vectored writes (libuv, glibc stdio)"),
    ("pread64", "positioned reads (ld.so reading ELF headers)"),
    ("pwrite64", "positioned writes (sqlite, os.pwrite)"),
    ("preadv", "positioned vectored reads (libuv fs)"),
    ("pwritev", "positioned vectored writes (libuv fs)"),
    ("preadv2", "positioned vectored reads with flags (libuv fs)"),
    ("pwritev2", "positioned vectored writes with flags (libuv fs)"),
    ("lseek", "seek in files"),
    ("open", "open files (legacy number of openat; paths are Landlock's job)"),
    ("creat", "create files (legacy number of open; GNU tar uses it)"),
    ("openat", "open files (paths are confined by Landlock and the read-only root)"),
    ("openat2", "open files with RESOLVE_* restrictions (only narrows openat)"),
    ("close", "close descriptors"),
    ("close_range", "close inherited descriptors before exec (python subprocess)"),
    ("dup", "duplicate descriptors"),
    ("dup2", "redirect descriptors (shells, subprocess)"),
    ("dup3", "redirect descriptors with O_CLOEXEC"),
    ("fcntl", "descriptor flags, O_NONBLOCK, record locks"),
    ("flock", "advisory whole-file locks"),
    ("pipe", "pipes (legacy number of pipe2)"),
    ("sendfile", "in-kernel copy (shutil.copyfile, libuv fs.copyFile)"),
    ("splice", "move data between a pipe and a descriptor (os.splice, coreutils cat); both ends are the caller's"),
    ("tee", "duplicate pipe contents between two pipes the caller holds"),
    ("copy_file_range", "in-kernel copy (node fs.copyFile, python shutil)"),
    ("fadvise64", "read-ahead hints (python, coreutils)"),
    ("fallocate", "preallocate file space (within the tmpfs size cap)"),
    ("truncate", "truncate files by path"),
    ("ftruncate", "truncate open files"),
    ("fsync", "flush a file (a no-op on tmpfs)"),
    ("fdatasync", "flush file data (a no-op on tmpfs)"),
    // Metadata and directories.
    ("stat", "file status (legacy number)"),
    ("fstat", "file status of descriptors"),
    ("lstat", "file status without following symlinks (legacy number)"),
    ("newfstatat", "file status (glibc stat family)"),
    ("statx", "extended file status (node, coreutils)"),
    ("statfs", "filesystem status (python, df)"),
    ("fstatfs", "filesystem status of descriptors"),
    ("access", "permission checks (legacy number)"),
    ("faccessat", "permission checks"),
    ("faccessat2", "permission checks with flags (glibc >= 2.33)"),
    ("getdents", "list directories (legacy number)"),
    ("getdents64", "list directories (os.listdir, readdir)"),
    ("getcwd", "current directory"),
    ("chdir", "change directory (cd, subprocess cwd)"),
    ("fchdir", "change directory by descriptor"),
    ("mkdir", "create directories (legacy number)"),
    ("mkdirat", "create directories"),
    ("rmdir", "remove directories"),
    ("mknod", "FIFOs (legacy number; device nodes need a dropped capability)"),
    ("mknodat", "FIFOs for mkfifo (device nodes need a dropped capability)"),
    ("unlink", "remove files (legacy number)"),
    ("unlinkat", "remove files (shutil.rmtree, rm)"),
    ("rename", "rename files (legacy number)"),
    ("renameat", "rename files"),
    ("renameat2", "rename files with flags (node, mv)"),
    ("link", "hard links (legacy number)"),
    ("linkat", "hard links"),
    ("symlink", "symbolic links (legacy number)"),
    ("symlinkat", "symbolic links"),
    ("readlink", "read symlinks (legacy number; /proc/self/exe)"),
    ("readlinkat", "read symlinks"),
    ("chmod", "file modes (legacy number)"),
    ("fchmod", "file modes of descriptors"),
    ("fchmodat", "file modes"),
    ("fchmodat2", "file modes with flags (glibc >= 2.39 lchmod)"),
    ("chown", "owners: tarfile/cp -p as sandbox root; only mapped ids are accepted"),
    ("fchown", "owners of descriptors; only ids mapped in the user namespace are accepted"),
    ("lchown", "owners of symlinks; only ids mapped in the user namespace are accepted"),
    ("fchownat", "owners; only ids mapped in the user namespace are accepted"),
    ("utime", "file times (legacy number)"),
    ("utimes", "file times (legacy number)"),
    ("futimesat", "file times (legacy number)"),
    ("utimensat", "file times (touch, os.utime)"),
    ("umask", "file creation mask (shells, tempfile)"),
    ("getxattr", "read extended attributes (shutil.copy2, cp -a)"),
    ("lgetxattr", "read extended attributes of symlinks"),
    ("fgetxattr", "read extended attributes of descriptors"),
    ("listxattr", "list extended attributes (shutil.copy2)"),
    ("llistxattr", "list extended attributes of symlinks (shutil.copystat)"),
    ("flistxattr", "list extended attributes of descriptors"),
    ("setxattr", "write user.* attributes on the writable tmpfs"),
    ("lsetxattr", "write user.* attributes of symlinks"),
    ("fsetxattr", "write user.* attributes of descriptors"),
    ("removexattr", "remove extended attributes"),
    ("lremovexattr", "remove extended attributes of symlinks"),
    ("fremovexattr", "remove extended attributes of descriptors"),
    // Waiting for events.
    ("poll", "wait on descriptors"),
    ("ppoll", "wait on descriptors with a signal mask"),
    ("select", "wait on descriptors (legacy interface)"),
    ("pselect6", "wait on descriptors (python select, dash)"),
    ("epoll_create", "event loops (legacy number)"),
    ("epoll_create1", "event loops (libuv, asyncio)"),
    ("epoll_ctl", "event loop registration"),
    ("epoll_wait", "event loop wait"),
    ("epoll_pwait", "event loop wait (libuv)"),
    ("epoll_pwait2", "event loop wait with a timespec timeout"),
    ("eventfd", "event counters (legacy number)"),
    ("eventfd2", "event counters (libuv thread wake-ups)"),
    // Memory.
    ("brk", "heap"),
    ("mmap", "memory mappings (ld.so, malloc, V8)"),
    ("munmap", "unmap memory"),
    ("mprotect", "change protections (ld.so RELRO, V8 JIT)"),
    ("mremap", "grow mappings (glibc realloc)"),
    ("madvise", "memory hints (malloc trimming, V8, thread stacks)"),
    ("msync", "flush shared mappings (python mmap)"),
    ("pkey_alloc", "memory protection keys (V8 probes them for JIT pages)"),
    ("pkey_free", "memory protection keys"),
    ("pkey_mprotect", "memory protection keys"),
    // Processes and threads.
    ("fork", "new processes (legacy number)"),
    ("vfork", "new processes (python subprocess via vfork)"),
    ("execve", "run programs (the payload itself, shells, subprocess)"),
    ("exit", "end a thread"),
    ("exit_group", "end the process"),
    ("wait4", "reap children (shells, subprocess)"),
    ("waitid", "reap children (os.waitid, libuv)"),
    ("kill", "signal processes (only the sandbox's own pid namespace is visible)"),
    ("tgkill", "signal a thread (raise, abort, pthread_kill)"),
    ("pidfd_open", "process handles (python asyncio child watcher)"),
    ("pidfd_send_signal", "signal through a process handle"),
    ("getpid", "own process id"),
    ("getppid", "parent process id"),
    ("gettid", "own thread id"),
    ("getpgrp", "process group (shells)"),
    ("getpgid", "process group of a process"),
    ("setpgid", "process groups for shell jobs"),
    ("getsid", "session id"),
    ("setsid", "new session (subprocess start_new_session, setsid)"),
    ("getuid", "user id"),
    ("geteuid", "effective user id"),
    ("getgid", "group id"),
    ("getegid", "effective group id"),
    ("getgroups", "supplementary groups (id, bash)"),
    ("getresuid", "user ids"),
    ("getresgid", "group ids"),
    ("capget", "read own capabilities (node checks them at start-up; all are dropped)"),
    ("set_tid_address", "thread start-up (glibc)"),
    ("set_robust_list", "thread start-up: robust futexes (glibc)"),
    ("rseq", "restartable sequences (glibc >= 2.35 registers one per thread)"),
    ("futex", "thread synchronisation"),
    ("arch_prctl", "thread-local storage set-up (ld.so)"),
    ("prctl", "thread names, PDEATHSIG (anything privileged needs a dropped capability)"),
    ("sched_yield", "yield the CPU (spin locks)"),
    ("sched_getaffinity", "CPU count (os.cpu_count, libuv thread pool)"),
    ("getrusage", "resource usage (time, python resource)"),
    ("times", "process times (shell times builtin)"),
    ("prlimit64", "read and lower own limits (ulimit; raising needs a dropped capability)"),
    ("getrlimit", "read own limits (legacy number)"),
    ("setrlimit", "lower own limits (legacy number)"),
    ("uname", "kernel name and version"),
    ("sysinfo", "memory and uptime (node os.totalmem)"),
    ("getrandom", "random bytes (hash seeds, crypto)"),
    // Signals and time.
    ("rt_sigaction", "signal handlers"),
    ("rt_sigprocmask", "signal masks"),
    ("rt_sigreturn", "return from signal handlers"),
    ("rt_sigsuspend", "wait for signals (shell wait)"),
    ("rt_sigpending", "pending signals"),
    ("rt_sigtimedwait", "wait for signals (signal.sigtimedwait)"),
    ("sigaltstack", "alternate signal stacks (python faulthandler, node)"),
    ("restart_syscall", "resume interrupted sleeps"),
    ("pause", "wait for a signal"),
    ("alarm", "signal.alarm"),
    ("getitimer", "interval timers"),
    ("setitimer", "interval timers (signal.setitimer)"),
    ("nanosleep", "sleep"),
    ("clock_nanosleep", "sleep (time.sleep, sleep)"),
    ("clock_gettime", "clocks (vDSO fallback)"),
    ("clock_getres", "clock resolution"),
    ("gettimeofday", "wall clock (vDSO fallback)"),
    ("time", "wall clock (vDSO fallback)"),
    // Sockets (families are checked at socket(); the network namespace has no route out).
    ("connect", "connect sockets (NSS over AF_UNIX, loopback clients)"),
    ("sendto", "send on sockets"),
    ("recvfrom", "receive on sockets"),
    ("sendmsg", "send with ancillary data (descriptor passing)"),
    ("recvmsg", "receive with ancillary data"),
    ("shutdown", "half-close sockets"),
    ("getsockname", "local socket address (python socketpair, libuv)"),
    ("getpeername", "peer socket address"),
    ("getsockopt", "socket options (SO_TYPE probes on stdio)"),
    ("setsockopt", "socket options (TCP_NODELAY, SO_REUSEADDR)"),
    ("bind", "name sockets of the allowed families (AF_UNIX servers, glibc getifaddrs' netlink)"),
    ("listen", "accept connections on AF_UNIX sockets (multiprocessing managers, forkserver)"),
    ("accept", "accept connections (legacy number)"),
    ("accept4", "accept connections (multiprocessing, libuv)"),
    // Process-local tuning: each call acts only on the sandbox's own processes and cannot
    // raise a privilege (measured: OpenBLAS at `import numpy`, python os.nice/os.sched_*).
    ("mbind", "NUMA policy of own memory (OpenBLAS at import); nodes stay within the cpuset"),
    ("set_mempolicy", "NUMA policy of the calling thread (OpenBLAS, the JVM with -XX:+UseNUMA)"),
    ("get_mempolicy", "read the NUMA policy (OpenBLAS, libnuma probes)"),
    ("set_mempolicy_home_node", "NUMA home node of own memory ranges"),
    ("sched_setaffinity", "pin own threads to CPUs; the kernel clamps the mask to the cpuset"),
    ("getpriority", "read nice values (os.getpriority, nice)"),
    ("setpriority", "nice: only processes visible in the sandbox's PID namespace, and raising priority needs CAP_SYS_NICE"),
    ("sched_getparam", "read scheduling parameters"),
    ("sched_getscheduler", "read the scheduling policy (test suites, JVM)"),
    ("sched_getattr", "read scheduling attributes"),
    ("sched_get_priority_max", "priority range of a policy"),
    ("sched_get_priority_min", "priority range of a policy"),
    ("sched_rr_get_interval", "round-robin time slice"),
    ("sched_setparam", "scheduling priority of own processes: real-time needs RLIMIT_RTPRIO (0) or CAP_SYS_NICE"),
    ("sched_setscheduler", "SCHED_OTHER/BATCH/IDLE for own processes (posix_spawn's setscheduler); real-time is refused by the kernel"),
    ("sched_setattr", "the same through the extended interface"),
    // Identity: inside the user namespace the payload is root without capabilities, so each call
    // can only set ids it already has (setreuid(-1, -1), posix_spawn's POSIX_SPAWN_RESETIDS);
    // anything else needs CAP_SETUID/CAP_SETGID, and setgroups is "deny" for the namespace.
    ("setuid", "set the uid the process already has (anything else needs CAP_SETUID)"),
    ("setgid", "set the gid the process already has (anything else needs CAP_SETGID)"),
    ("setreuid", "real/effective uid to ids already held"),
    ("setregid", "real/effective gid to ids already held"),
    ("setresuid", "real/effective/saved uid to ids already held"),
    ("setresgid", "real/effective/saved gid to ids already held"),
    ("setfsuid", "filesystem uid to an id already held"),
    ("setfsgid", "filesystem gid to an id already held"),
    ("setgroups", "refused by the kernel (setgroups is \"deny\" in the sandbox's user namespace)"),
    // File watching: inotify sees only paths the sandbox can see; instances and watches are
    // counted per user namespace (fs.inotify.max_user_* apply to the sandbox's own ucounts).
    ("inotify_init", "file watching (legacy number of inotify_init1)"),
    ("inotify_init1", "file watching (node fs.watch, python watchdog, dev servers)"),
    ("inotify_add_watch", "watch a path the sandbox can see"),
    ("inotify_rm_watch", "stop watching"),
    ("memfd_create", "anonymous tmpfs file: what /tmp already offers, charged to the same memory cgroup"),
    ("membarrier", "process-wide memory barriers (JIT runtimes, liburcu); no effect outside the process"),
    ("getcpu", "current CPU and NUMA node (sched_getcpu fallback when the vDSO is absent)"),
];

/// Allowed when an argument check passes; any other value gets the hard deny action.
pub(crate) const CHECKED: &[(&str, Check, &str)] = &[
    (
        "clone",
        Check::CloneNoNamespace,
        "threads and fork; CLONE_NEW* would create namespaces the sandbox does not control",
    ),
    (
        "socket",
        Check::SocketFamily,
        "AF_UNIX always (NSS, IPC); NETLINK_ROUTE for getifaddrs (own netns, read-only without CAP_NET_ADMIN); AF_INET/AF_INET6 only with network = loopback, and only with protocol 0, TCP, UDP or ICMP (no module autoload)",
    ),
    (
        "socketpair",
        Check::SocketpairUnix,
        "AF_UNIX pairs (asyncio self-pipe, multiprocessing); other families load protocol code",
    ),
    (
        "ioctl",
        Check::IoctlNoTiocsti,
        "terminal and FIONBIO requests; TIOCSTI/TIOCLINUX inject input, TIOCSETD loads line disciplines (low 32 bits compared)",
    ),
    (
        "pipe2",
        Check::Pipe2NoNotification,
        "pipes for shell pipelines and subprocess output; O_NOTIFICATION_PIPE (watch queues) refused",
    ),
    (
        "personality",
        Check::PersonalityQueryOrLinux,
        "query or PER_LINUX; READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, MMAP_PAGE_ZERO aid exploits",
    ),
];

/// Fail with ENOSYS whatever the default action, so the caller falls back.
#[rustfmt::skip]
pub(crate) const ENOSYS: &[(&str, &str)] = &[
    ("clone3", "its flags live in memory BPF cannot read; glibc falls back to clone on ENOSYS"),
    ("io_uring_setup", "io_uring runs operations seccomp never sees; callers fall back on ENOSYS"),
    ("io_uring_enter", "io_uring (see io_uring_setup)"),
    ("io_uring_register", "io_uring (see io_uring_setup)"),
];

/// Refused with an errno whatever the default action (counted in the verdict's `seccomp_denied`):
/// privileged operations that fail without capabilities anyway, answered the way the kernel
/// would, so programs that probe them take their usual error path. A profile cannot allow them.
#[rustfmt::skip]
pub(crate) const REFUSED: &[(&str, i32, &str)] = &[
    ("chroot", libc::EPERM, "the root is fixed before the payload starts (needs CAP_SYS_CHROOT)"),
    ("name_to_handle_at", libc::EOPNOTSUPP, "file handles only serve open_by_handle_at; callers fall back"),
    ("acct", libc::EPERM, "host process accounting (needs CAP_SYS_PACCT)"),
    ("quotactl", libc::EPERM, "host disk quotas"),
    ("quotactl_fd", libc::EPERM, "host disk quotas"),
    ("syslog", libc::EPERM, "the host kernel log (dmesg handles EPERM)"),
    ("settimeofday", libc::EPERM, "the host clock is not namespaced (needs CAP_SYS_TIME)"),
    ("clock_settime", libc::EPERM, "the host clock is not namespaced (test suites probe it)"),
    ("clock_adjtime", libc::EPERM, "the host clock is not namespaced"),
    ("adjtimex", libc::EPERM, "the host clock is not namespaced"),
    ("vhangup", libc::EPERM, "hangs up the controlling terminal (needs CAP_SYS_TTY_CONFIG)"),
    ("uselib", libc::ENOSYS, "obsolete a.out loader"),
    ("nfsservctl", libc::ENOSYS, "obsolete"),
    ("lookup_dcookie", libc::ENOSYS, "obsolete profiling interface"),
];

/// Kill the calling process whatever the default action, and report it in the verdict: calls
/// that defend the kernel (attack surface, escapes). A profile cannot allow them.
#[rustfmt::skip]
pub(crate) const KILL: &[(&str, &str)] = &[
    ("unshare", "new namespaces are the sandbox's own job"),
    ("setns", "joining other namespaces"),
    ("mount", "the mount tree is fixed before the payload starts"),
    ("umount2", "unmounting would expose the covered paths"),
    ("pivot_root", "the root is fixed before the payload starts"),
    ("fsopen", "new mount API"),
    ("fsconfig", "new mount API"),
    ("fsmount", "new mount API"),
    ("fspick", "new mount API"),
    ("move_mount", "new mount API"),
    ("open_tree", "new mount API: clones mount trees"),
    ("open_tree_attr", "new mount API: clones mount trees"),
    ("mount_setattr", "new mount API: changes mount flags"),
    ("ptrace", "inspecting or controlling other processes"),
    ("process_vm_readv", "reading other processes' memory (ptrace access)"),
    ("process_vm_writev", "writing other processes' memory (ptrace access)"),
    ("pidfd_getfd", "stealing other processes' descriptors (ptrace access)"),
    ("kcmp", "comparing kernel objects of other processes (ptrace access)"),
    ("bpf", "eBPF: a large kernel attack surface"),
    ("perf_event_open", "perf events: a large kernel attack surface and side channels"),
    ("keyctl", "kernel keyrings are not namespaced"),
    ("add_key", "kernel keyrings are not namespaced"),
    ("request_key", "kernel keyrings are not namespaced"),
    ("userfaultfd", "stalls kernel page faults at will (a classic exploit primitive)"),
    ("kexec_load", "replacing the kernel"),
    ("kexec_file_load", "replacing the kernel"),
    ("init_module", "loading kernel modules"),
    ("finit_module", "loading kernel modules"),
    ("delete_module", "unloading kernel modules"),
    ("reboot", "rebooting the host"),
    ("swapon", "host swap configuration"),
    ("swapoff", "host swap configuration"),
    ("open_by_handle_at", "opens files by handle, bypassing path checks (the shocker escape)"),
    ("iopl", "raw I/O port access"),
    ("ioperm", "raw I/O port access"),
    ("modify_ldt", "16-bit segments: old kernel attack surface"),
];

/// A named set of system calls a profile may add (`seccomp.groups`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    pub name: &'static str,
    /// Why a profile would want it, and why it is safe to grant.
    pub reason: &'static str,
    pub syscalls: &'static [&'static str],
}

/// The named groups a profile can add.
#[rustfmt::skip]
pub const GROUPS: &[Group] = &[
    Group {
        name: "network",
        reason: "batched datagram I/O (glibc's resolver sends A and AAAA together); implied by loopback",
        syscalls: &["sendmmsg", "recvmmsg"],
    },
    Group {
        name: "process_control",
        reason: "I/O priority of the sandbox's own processes (scheduling policy is in the base list)",
        syscalls: &["ioprio_get", "ioprio_set"],
    },
    Group {
        name: "timers",
        reason: "POSIX interval timers and timerfd (coreutils timeout, some event loops)",
        syscalls: &[
            "timer_create", "timer_settime", "timer_gettime", "timer_getoverrun", "timer_delete",
            "timerfd_create", "timerfd_settime", "timerfd_gettime",
        ],
    },
    Group {
        name: "ipc",
        reason: "System V IPC and POSIX message queues, private to the sandbox's IPC namespace",
        syscalls: &[
            "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl",
            "msgget", "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend",
            "mq_timedreceive", "mq_notify", "mq_getsetattr",
        ],
    },
    Group {
        name: "fs_watch",
        reason: "kept so profiles naming it still load: inotify is in the base list now",
        syscalls: &[],
    },
    Group {
        name: "aio",
        reason: "Linux native asynchronous I/O (libaio users such as databases)",
        syscalls: &[
            "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
        ],
    },
    Group {
        name: "memory",
        reason: "page locking (bounded by RLIMIT_MEMLOCK) and residency queries",
        syscalls: &["mlock", "mlock2", "munlock", "mlockall", "munlockall", "mincore"],
    },
];

/// What the sandbox's PID-1 init does after forking the payload (measured with `strace -f` on
/// `stockade run`, including a forwarded SIGTERM): wait for signals, forward them, reap, report
/// over the protocol pipe, exit.
#[rustfmt::skip]
pub(crate) const INIT: &[(&str, &str)] = &[
    ("rt_sigtimedwait", "wait for SIGCHLD and the forwarded signals (sigwait)"),
    ("kill", "forward signals to the payload"),
    ("wait4", "reap the payload and orphans"),
    ("getrusage", "CPU time and peak RSS of the reaped children"),
    ("write", "report the exit status over the protocol pipe"),
    ("exit_group", "exit, tearing down the PID namespace"),
    ("rt_sigreturn", "return from a signal handler, should one ever run"),
    ("restart_syscall", "resume a call interrupted by a stop/continue"),
];
