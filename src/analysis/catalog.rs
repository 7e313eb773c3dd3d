//! The built-in rule catalogue: what each rule id matches, per language. Presets (`presets`)
//! choose which ids they enable and at which severity.
//!
//! The rules are ours: they match syntax-tree facts, not text, and cover the constructs regex
//! scanners cannot see (computed imports, computed code, reflection).

use super::Language;
use super::rules::{ArgCondition, Rule};

const PY: Language = Language::Python;
const JS: Language = Language::JavaScript;
const SH: Language = Language::Shell;

/// Builder for catalogue entries.
trait Build {
    fn imports(self, names: &[&str]) -> Self;
    fn calls(self, names: &[&str]) -> Self;
    fn accesses(self, names: &[&str]) -> Self;
    fn commands(self, names: &[&str]) -> Self;
    fn constructs(self, ids: &[&str]) -> Self;
    fn arg(self, arg: ArgCondition) -> Self;
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

impl Build for Rule {
    fn imports(mut self, names: &[&str]) -> Self {
        self.matcher.imports = strings(names);
        self
    }
    fn calls(mut self, names: &[&str]) -> Self {
        self.matcher.calls = strings(names);
        self
    }
    fn accesses(mut self, names: &[&str]) -> Self {
        self.matcher.accesses = strings(names);
        self
    }
    fn commands(mut self, names: &[&str]) -> Self {
        self.matcher.commands = strings(names);
        self
    }
    fn constructs(mut self, ids: &[&str]) -> Self {
        self.matcher.constructs = strings(ids);
        self
    }
    fn arg(mut self, arg: ArgCondition) -> Self {
        self.matcher.arg = Some(arg);
        self
    }
}

fn any_arg_equals(values: &[&str]) -> ArgCondition {
    ArgCondition {
        equals: strings(values),
        ..ArgCondition::default()
    }
}

fn any_arg_contains(values: &[&str]) -> ArgCondition {
    ArgCondition {
        contains: strings(values),
        ..ArgCondition::default()
    }
}

/// Python `open(path, mode)` / JS `fs.open(path, flags)` with a writing mode.
fn write_mode(position: usize, keyword: &str) -> ArgCondition {
    ArgCondition {
        position: Some(position),
        keyword: Some(keyword.to_string()),
        contains: strings(&["w", "a", "x", "+"]),
        ..ArgCondition::default()
    }
}

fn r(id: &str, message: &str, languages: &[Language]) -> Rule {
    Rule::new(id, message, languages)
}

/// Every built-in rule definition (severity is set by the preset that enables it).
pub(crate) fn catalog() -> Vec<Rule> {
    let mut rules = behaviour_rules();
    rules.extend(file_and_network_rules());
    rules.extend(module_rules());
    rules
}

#[rustfmt::skip]
fn behaviour_rules() -> Vec<Rule> {
    vec![
        r("system-command", "system command execution", &[PY]).calls(&[
            "os.system", "os.popen*", "os.exec*", "os.spawn*", "os.posix_spawn*", "os.fork",
            "os.forkpty", "subprocess.*", "pty.spawn", "commands.*", "platform.popen",
            "asyncio.create_subprocess_*",
        ]),
        r("system-command", "system command execution", &[JS]).calls(&[
            "child_process.*", "process.binding", "process._linkedBinding", "Bun.spawn*",
            "Deno.run", "Deno.Command",
        ]),
        r("destructive-command", "destructive command", &[SH]).commands(&[
            "mkfs*", "shred", "wipefs", "fdisk", "sfdisk", "parted", "shutdown", "reboot", "halt",
            "poweroff", "telinit",
        ]),
        r(
            "destructive-command",
            "recursive removal of a system or home directory",
            &[SH],
        )
        .commands(&["rm"])
        .arg(any_arg_equals(&[
            "/", "/*", "~", "~/", "~/*", "/home", "/etc", "/usr", "/var", "/boot", "/root", "/bin",
            "/lib", "/sys", "/proc", "/dev", ".", "..", "*",
        ])),
        r("destructive-command", "raw write to a device", &[SH])
            .commands(&["dd"])
            .arg(any_arg_contains(&["of=/dev/"])),
        r(
            "privilege",
            "privilege change or kernel administration",
            &[SH],
        )
        .commands(&[
            "sudo", "su", "doas", "pkexec", "chroot", "nsenter", "unshare", "mount", "umount",
            "setcap", "insmod", "modprobe", "rmmod", "sysctl", "iptables", "nft", "capsh",
            "setpriv",
        ]),
        r("privilege", "set-id permission bits", &[SH])
            .commands(&["chmod"])
            .arg(any_arg_contains(&["+s", "4755", "2755", "6755", "4777"])),
        r("privilege", "privilege change", &[PY]).calls(&[
            "os.setuid", "os.setgid", "os.seteuid", "os.setegid", "os.setre*", "os.setres*",
            "os.setgroups", "os.chroot",
        ]),
        r("privilege", "privilege change", &[JS]).calls(&[
            "process.setuid", "process.setgid", "process.seteuid", "process.setegid",
            "process.setgroups", "process.initgroups",
        ]),
        r("code-eval", "dynamic code evaluation", &[PY]).calls(&[
            "eval", "exec", "compile", "execfile", "code.interact", "code.Interactive*",
            "runpy.run_*", "timeit.timeit", "timeit.repeat",
        ]),
        r("code-eval", "dynamic code evaluation", &[JS]).calls(&[
            "eval", "Function", "vm.*", "execScript",
        ]),
        r("code-eval", "string evaluated by a timer", &[JS])
            .calls(&["setTimeout", "setInterval", "setImmediate"])
            .arg(ArgCondition {
                position: Some(0),
                contains: strings(&[""]),
                ..ArgCondition::default()
            }),
        r("code-eval", "dynamic code evaluation", &[SH]).commands(&["eval", "source", "."]),
        r("code-eval", "inline code run by an interpreter", &[SH])
            .commands(&[
                "sh", "bash", "dash", "zsh", "ksh", "python*", "pypy*", "node", "nodejs", "perl",
                "ruby", "php",
            ])
            .arg(any_arg_equals(&[
                "-c", "-lc", "-ec", "-e", "--eval", "-p", "-E", "-r",
            ])),
        r(
            "computed-code",
            "code that cannot be analysed before it runs",
            &[],
        )
        .constructs(&["computed-code", "computed-command", "nesting-limit"]),
        r("dynamic-import", "dynamic import", &[PY]).calls(&[
            "__import__", "importlib.import_module", "importlib.__import__", "importlib.reload",
            "imp.load_*", "importlib.util.spec_from_*", "importlib.machinery.*", "zipimport.*",
        ]),
        r("dynamic-import", "dynamic import", &[JS]).calls(&[
            "import", "module.require", "process.mainModule.require", "require.main.require",
            "module.constructor._load", "module._load", "module.Module._load",
            "module.createRequire",
        ]),
        r(
            "computed-import",
            "import of a module name computed at run time",
            &[],
        )
        .constructs(&["computed-import"]),
        r("reflection", "reflective access", &[PY])
            .calls(&[
                "getattr", "setattr", "delattr", "globals", "locals", "vars", "sys._getframe",
                "inspect.currentframe", "inspect.stack",
            ])
            .accesses(&["__builtins__", "sys._getframe"]),
        r("reflection", "reflective access", &[JS])
            .calls(&["Reflect.*"])
            .accesses(&["process.mainModule", "module.constructor", "require.cache"]),
        r("hidden-access", "member reached in a way that hides it", &[])
            .constructs(&["dunder-attribute", "computed-attribute"]),
        r("native-code", "native code loading", &[PY]).calls(&["ctypes.*", "_ctypes.*", "cffi.*"]),
        r("native-code", "native code loading", &[JS]).calls(&["process.dlopen", "ffi-napi.*"]),
        r("deserialization", "unsafe deserialization", &[PY]).calls(&[
            "pickle.load*", "pickle.Unpickler*", "cPickle.load*", "_pickle.load*", "marshal.load*",
            "shelve.open", "dill.load*", "cloudpickle.load*", "jsonpickle.decode", "yaml.load",
            "yaml.unsafe_load", "joblib.load", "pandas.read_pickle",
        ]),
        r("deserialization", "unsafe deserialization", &[JS])
            .calls(&["v8.deserialize", "node-serialize.unserialize"]),
        r("process-control", "process or service control", &[PY]).calls(&[
            "os.kill", "os.killpg", "signal.pthread_kill",
        ]),
        r("process-control", "process or service control", &[JS]).calls(&["process.kill"]),
        r("process-control", "process or service control", &[SH]).commands(&[
            "kill", "pkill", "killall", "nohup", "disown", "crontab", "at", "batch", "systemctl",
            "service", "setsid",
        ]),
        r("package-install", "package installation", &[SH])
            .commands(&[
                "pip*", "npm", "yarn", "pnpm", "bun", "gem", "cargo", "go", "conda",
            ])
            .arg(any_arg_equals(&["install", "i", "add", "get"])),
        r("package-install", "package installation", &[SH]).commands(&[
            "apt", "apt-get", "aptitude", "yum", "dnf", "apk", "pacman", "zypper", "dpkg", "rpm",
            "snap",
        ]),
        r("package-install", "package installation", &[PY]).calls(&["pip.main", "pip._internal.*"]),
        r("os-call", "call into the os module", &[PY]).calls(&["os.*"]),
        r("parse-error", "code does not parse", &[]).constructs(&["parse-error"]),
    ]
}

#[rustfmt::skip]
fn file_and_network_rules() -> Vec<Rule> {
    vec![
        r("file-write", "file write", &[PY])
            .calls(&["open", "io.open", "codecs.open"])
            .arg(write_mode(1, "mode")),
        r("file-write", "file write", &[PY]).calls(&[
            "os.rename", "os.replace", "os.mkdir", "os.makedirs", "os.symlink", "os.link",
            "os.chmod", "os.chown", "os.truncate", "os.write", "os.mkfifo", "os.mknod",
            "shutil.copy*", "shutil.move", "shutil.chown", "pathlib.Path().write_*",
            "pathlib.Path().touch", "pathlib.Path().mkdir", "pathlib.Path().rename",
            "pathlib.Path().symlink_to",
        ]),
        r("file-write", "file write", &[JS]).calls(&[
            "fs.*writeFile*", "fs.*appendFile*", "fs.createWriteStream", "fs.*copyFile*", "fs.*cp",
            "fs.*cpSync", "fs.*rename*", "fs.*mkdir*", "fs.*symlink*", "fs.*link", "fs.*chmod*",
            "fs.*chown*", "fs.*truncate*", "fs.write", "fs.writeSync", "fs.writev*",
        ]),
        r("file-write", "file write", &[JS])
            .calls(&["fs.*open*"])
            .arg(write_mode(1, "flags")),
        r("file-write", "file write", &[SH]).commands(&[
            "tee", "cp", "mv", "dd", "touch", "mkdir", "ln", "install", "truncate", "chmod",
            "chown",
        ]),
        r("file-write", "file write", &[]).constructs(&["file-redirect"]),
        r("file-delete", "file deletion", &[PY]).calls(&[
            "os.remove", "os.unlink", "os.rmdir", "os.removedirs", "shutil.rmtree",
            "pathlib.Path().unlink", "pathlib.Path().rmdir",
        ]),
        r("file-delete", "file deletion", &[JS]).calls(&[
            "fs.*unlink*", "fs.*rm", "fs.*rmSync", "fs.*rmdir*",
        ]),
        r("file-delete", "file deletion", &[SH]).commands(&["rm", "rmdir", "unlink", "shred"]),
        r("file-delete", "file deletion", &[SH])
            .commands(&["find"])
            .arg(any_arg_equals(&["-delete"])),
        r("file-access", "file system access", &[PY]).calls(&[
            "open", "io.open", "codecs.open", "os.open", "os.listdir", "os.scandir", "os.walk",
            "glob.*", "pathlib.Path().read_*", "pathlib.Path().open", "pathlib.Path().iterdir",
            "shutil.*",
        ]),
        r("file-access", "file system access", &[JS]).calls(&["fs.*"]),
        r("file-access", "file system access", &[SH]).commands(&[
            "cat", "head", "tail", "less", "more", "ls", "find", "stat", "du", "tar",
        ]),
        r("env-access", "environment variable access", &[PY]).accesses(&[
            "os.environ", "os.environb", "os.getenv", "os.putenv", "os.unsetenv", "posix.environ",
        ]),
        r("env-access", "environment variable access", &[JS]).accesses(&["process.env"]),
        r("env-access", "environment variable dump", &[SH]).commands(&["printenv"]),
        r("network-socket", "network socket", &[PY]).calls(&[
            "socket.socket", "socket.create_connection", "socket.create_server",
            "socket.socketpair", "socket.fromfd", "asyncio.open_connection", "asyncio.start_server",
            "asyncio.open_unix_connection",
        ]),
        r("network-socket", "network socket", &[JS]).calls(&[
            "net.*", "dgram.*", "tls.connect", "tls.createServer", "http.createServer",
            "https.createServer",
        ]),
        r("network-socket", "network connection tool", &[SH]).commands(&[
            "nc", "ncat", "netcat", "socat", "telnet", "ssh", "scp", "sftp", "ftp",
        ]),
        r("network-socket", "network connection", &[]).constructs(&["dev-tcp"]),
        r("raw-socket", "raw or packet socket", &[PY])
            .calls(&["socket.socket"])
            .arg(ArgCondition {
                names: strings(&["socket.SOCK_RAW", "socket.AF_PACKET", "socket.SOCK_PACKET"]),
                ..ArgCondition::default()
            }),
        r("raw-socket", "raw packet tool", &[SH])
            .commands(&["tcpdump", "nmap", "hping3", "masscan", "arping", "tshark"]),
        r("network-http", "HTTP or other network client", &[PY]).calls(&[
            "requests.*", "urllib.request.*", "urllib.urlopen", "urllib2.*", "urllib3.*", "httpx.*",
            "aiohttp.*", "http.client.*", "ftplib.*", "smtplib.*", "webbrowser.*",
        ]),
        r("network-http", "HTTP or other network client", &[JS]).calls(&[
            "fetch", "http.request", "http.get", "https.request", "https.get", "http2.connect",
            "axios*", "node-fetch*", "undici.*", "XMLHttpRequest", "WebSocket", "EventSource",
        ]),
        r("network-http", "HTTP download tool", &[SH])
            .commands(&["curl", "wget", "lynx", "aria2c", "w3m"]),
    ]
}

#[rustfmt::skip]
fn module_rules() -> Vec<Rule> {
    let m = |id: &str, what: &str, language: Language, modules: &[&str]| {
        r(
            id,
            &format!("import of restricted module ({what})"),
            &[language],
        )
        .imports(modules)
    };
    vec![
        m(
            "module-os",
            "operating system interface",
            PY,
            &["os", "posix", "nt", "pwd", "grp", "resource", "fcntl"],
        ),
        m("module-sys", "interpreter internals", PY, &["sys"]),
        m(
            "module-subprocess",
            "process execution",
            PY,
            &[
                "subprocess", "pty", "commands", "popen2", "_posixsubprocess", "asyncio.subprocess",
            ],
        ),
        m(
            "module-subprocess",
            "process execution",
            JS,
            &["child_process"],
        ),
        m(
            "module-ctypes",
            "foreign functions",
            PY,
            &["ctypes", "_ctypes", "cffi"],
        ),
        m(
            "module-ctypes",
            "foreign functions",
            JS,
            &["ffi-napi", "ffi", "node-ffi", "ref-napi"],
        ),
        m(
            "module-socket",
            "network sockets",
            PY,
            &[
                "socket", "_socket", "socketserver", "ssl", "asyncore", "asynchat",
            ],
        ),
        m(
            "module-socket",
            "network sockets",
            JS,
            &["net", "dgram", "tls"],
        ),
        m(
            "module-http",
            "network clients",
            PY,
            &[
                "requests", "urllib", "urllib2", "urllib3", "httpx", "aiohttp", "http.client",
                "ftplib", "smtplib", "telnetlib", "poplib", "imaplib", "xmlrpc", "webbrowser",
            ],
        ),
        m(
            "module-http",
            "network clients",
            JS,
            &[
                "http", "https", "http2", "axios", "node-fetch", "undici", "got", "request",
                "superagent", "ws",
            ],
        ),
        m(
            "module-multiprocessing",
            "process-based parallelism",
            PY,
            &["multiprocessing", "concurrent.futures"],
        ),
        m(
            "module-multiprocessing",
            "process-based parallelism",
            JS,
            &["cluster"],
        ),
        m("module-threading", "threads", PY, &["threading", "_thread"]),
        m("module-threading", "threads", JS, &["worker_threads"]),
        m("module-fs", "file system operations", PY, &["shutil"]),
        m(
            "module-fs",
            "file system operations",
            JS,
            &["fs", "fs-extra"],
        ),
        m(
            "module-importlib",
            "dynamic imports",
            PY,
            &["importlib", "imp", "pkgutil", "runpy", "zipimport"],
        ),
        m("module-importlib", "module loader", JS, &["module"]),
        m(
            "module-pickle",
            "object serialization",
            PY,
            &[
                "pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle",
                "jsonpickle",
            ],
        ),
        m(
            "module-pickle",
            "object serialization",
            JS,
            &["v8", "node-serialize"],
        ),
        m("module-eval", "code evaluation", PY, &["code", "codeop"]),
        m(
            "module-eval",
            "code evaluation",
            JS,
            &["vm", "repl", "inspector"],
        ),
    ]
}

/// Ids of every catalogue rule, for validating custom presets.
pub(crate) fn rule_ids() -> Vec<String> {
    let mut ids: Vec<String> = catalog().into_iter().map(|r| r.id).collect();
    ids.sort();
    ids.dedup();
    ids
}
