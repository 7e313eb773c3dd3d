/* Probe run *inside* a stockade sandbox: tries things a payload must not be able to do and prints
 * one `key=value` fact per line. The end-to-end tests assert on these facts.
 * Built by the tests with `cc -O1 -o probe probe.c` and copied in with --copy-in. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <dirent.h>

static const char *err(long ret) {
    static char buf[32];
    if (ret >= 0) return "ok";
    snprintf(buf, sizeof buf, "%s", strerrorname_np(errno) ? strerrorname_np(errno) : "E?");
    return buf;
}

static void fact(const char *key, long ret) { printf("%s=%s\n", key, err(ret)); fflush(stdout); }

static long try_write(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    close(fd);
    unlink(path);
    return 0;
}

static void status_line(const char *name) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, name, strlen(name)) == 0 && line[strlen(name)] == ':') {
            char *v = line + strlen(name) + 1;
            while (*v == ' ' || *v == '\t') v++;
            v[strcspn(v, "\n")] = 0;
            printf("%s=%s\n", name, v);
        }
    }
    if (f) fclose(f);
}

static void list_dir(const char *key, const char *path, int numeric_only) {
    DIR *d = opendir(path);
    printf("%s=", key);
    if (!d) { printf("%s\n", err(-1)); return; }
    struct dirent *e;
    int first = 1;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (numeric_only && (e->d_name[0] < '0' || e->d_name[0] > '9')) continue;
        printf("%s%s", first ? "" : ",", e->d_name);
        first = 0;
    }
    printf("\n");
    closedir(d);
}

static void fill_tmp(void) {
    /* Write 1 MiB blocks until the tmpfs says no; report how far we got and why it stopped. */
    int fd = open("/tmp/fill", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    static char block[1 << 20];
    long total = 0, r = 0;
    while (fd >= 0 && total < (1L << 30) && (r = write(fd, block, sizeof block)) > 0) total += r;
    printf("tmp_fill_mib=%ld\ntmp_fill_stop=%s\n", total >> 20, r < 0 ? err(-1) : "eof");
    close(fd);
    unlink("/tmp/fill");
}

extern char **environ;

/* Each dangerous call in a child of its own: it must be killed (SIGKILL from the supervisor),
 * never return. Prints `<name>=killed:<signal>` or `<name>=returned:<errno name>`. */
static void dangerous(const char *name, int which) {
    pid_t pid = fork();
    if (pid == 0) {
        char c = 'x';
        long r = -1;
        switch (which) {
        case 0: r = unshare(CLONE_NEWUSER); break;
        case 1: r = unshare(CLONE_NEWNS); break;
        case 2: r = syscall(__NR_setns, -1, 0); break;
        case 3: r = mount("none", "/tmp", "tmpfs", 0, NULL); break;
        case 4: r = syscall(__NR_umount2, "/tmp", 0); break;
        case 5: r = syscall(__NR_pivot_root, "/tmp", "/tmp"); break;
        case 6: r = syscall(__NR_fsopen, "tmpfs", 0); break;
        case 7: r = syscall(__NR_open_tree, -1, "/", 0); break;
        case 8: r = syscall(__NR_move_mount, -1, "", -1, "", 0); break;
        case 9: r = ptrace(PTRACE_TRACEME, 0, 0, 0); break;
        case 10: r = syscall(__NR_process_vm_readv, 1, NULL, 0, NULL, 0, 0); break;
        case 11: r = syscall(__NR_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0); break;
        case 12: r = syscall(__NR_add_key, "user", "k", "v", 1, KEY_SPEC_SESSION_KEYRING); break;
        case 13: r = syscall(__NR_request_key, "user", "k", NULL, 0); break;
        case 14: r = syscall(__NR_bpf, 0, NULL, 0); break;
        case 15: r = syscall(__NR_perf_event_open, NULL, 0, -1, -1, 0); break;
        case 16: r = syscall(__NR_userfaultfd, 0); break;
        case 17: r = syscall(__NR_kexec_load, 0, 0, NULL, 0); break;
        case 18: r = syscall(__NR_init_module, NULL, 0, ""); break;
        case 19: r = syscall(__NR_finit_module, -1, "", 0); break;
        case 20: r = syscall(__NR_delete_module, "x", 0); break;
        case 21: r = syscall(__NR_reboot, 0, 0, 0, NULL); break;
        case 22: r = syscall(__NR_swapon, "/tmp/x", 0); break;
        case 23: r = syscall(__NR_open_by_handle_at, -1, NULL, 0); break;
        case 24: r = syscall(__NR_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0); break;
        case 25: r = personality(READ_IMPLIES_EXEC); break;
        case 26: r = ioctl(0, TIOCSTI, &c); break;
        case 27: r = syscall(__NR_ioctl, 0, 0xdead00000000UL | TIOCSTI, &c); break;
        case 28: r = ioctl(0, TIOCLINUX, &c); break;
        case 29: r = syscall(__NR_getpid | 0x40000000); break;
        case 30: { long ret; __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20) : "memory"); r = ret; break; }
        case 31: r = syscall(__NR_iopl, 3); break;
        case 32: r = syscall(__NR_modify_ldt, 0, NULL, 0); break;
        }
        printf("%s=returned:%s\n", name, err(r));
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) printf("%s=killed:%d\n", name, WTERMSIG(status));
    fflush(stdout);
}

/* In the order of the cases above. */
static const char *DANGEROUS[] = {
    "unshare_user", "unshare_ns", "setns", "mount", "umount2", "pivot_root", "fsopen",
    "open_tree", "move_mount", "ptrace", "process_vm_readv", "keyctl", "add_key", "request_key",
    "bpf", "perf_event_open", "userfaultfd", "kexec_load", "init_module", "finit_module",
    "delete_module", "reboot", "swapon", "open_by_handle_at", "clone_newuser", "personality_exec",
    "tiocsti", "tiocsti_high_bits", "tioclinux", "x32", "int80", "iopl", "modify_ldt", NULL,
};

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "facts";
    if (strcmp(mode, "int80") == 0) {
        /* i386 getpid through the 32-bit entry point: must never reach the kernel's handler. */
        long ret;
        __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20) : "memory");
        printf("int80=%ld\n", ret);
        return 0;
    }
    if (strcmp(mode, "x32") == 0) {
        long ret = syscall(__NR_getpid | 0x40000000);
        printf("x32=%s\n", err(ret));
        return 0;
    }
    if (strcmp(mode, "dangerous") == 0) {
        for (int i = 0; DANGEROUS[i]; i++) dangerous(DANGEROUS[i], i);
        printf("after=yes\n");
        return 0;
    }
    if (strcmp(mode, "compat") == 0) {
        /* What ordinary programs probe and handle: each must return, with an errno or success. */
        fact("socket_inet", socket(AF_INET, SOCK_STREAM, 0));
        fact("socket_inet6", socket(AF_INET6, SOCK_DGRAM, 0));
        fact("socket_packet", socket(AF_PACKET, SOCK_RAW, 0));
        fact("socket_netlink_route", socket(AF_NETLINK, SOCK_RAW, 0));
        fact("unknown_syscall", syscall(1000));
        fact("clock_settime", syscall(__NR_clock_settime, 0, NULL));
        fact("memfd_create", syscall(__NR_memfd_create, "probe", 0));
        cpu_set_t set;
        CPU_ZERO(&set);
        fact("sched_getaffinity", sched_getaffinity(0, sizeof set, &set));
        fact("sched_setaffinity", sched_setaffinity(0, sizeof set, &set));
        fact("set_mempolicy", syscall(__NR_set_mempolicy, 0, NULL, 0));
        errno = 0;
        fact("nice_lower", nice(1) == -1 && errno ? -1 : 0);
        errno = 0;
        fact("nice_raise", nice(-5) == -1 && errno ? -1 : 0);
        printf("after=yes\n");
        return 0;
    }
    if (strcmp(mode, "daemon") == 0) {
        /* Double fork + setsid: the grandchild must die with the sandbox. */
        if (fork() == 0) {
            setsid();
            if (fork() == 0) {
                for (;;) pause();
            }
            _exit(0);
        }
        sleep(1);
        printf("daemon=started\n");
        return 0;
    }
    printf("pid=%d\nppid=%d\nuid=%d\n", getpid(), getppid(), getuid());
    list_dir("proc_pids", "/proc", 1);
    list_dir("fds", "/proc/self/fd", 0);
    list_dir("dev", "/dev", 0);
    for (char **e = environ; *e; e++) printf("env=%s\n", *e);
    char host[64] = {0};
    gethostname(host, sizeof host - 1);
    printf("hostname=%s\n", host);
    FILE *f = fopen("/proc/net/dev", "r");
    char line[256];
    int ifaces = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        *colon = 0;
        char *name = line;
        while (*name == ' ') name++;
        printf("iface=%s\n", name);
        ifaces++;
    }
    if (f) fclose(f);
    status_line("CapInh"); status_line("CapPrm"); status_line("CapEff");
    status_line("CapBnd"); status_line("CapAmb"); status_line("NoNewPrivs");
    status_line("Seccomp"); status_line("Seccomp_filters");
    fact("write_root", try_write("/probe-file"));
    fact("write_usr", try_write("/usr/probe-file"));
    fact("write_etc", try_write("/etc/probe-file"));
    fact("write_tmp", try_write("/tmp/probe-file"));
    fact("write_sandbox", try_write("/sandbox/probe-file"));
    fact("write_dev", try_write("/dev/probe-file"));
    fact("open_shadow", open("/etc/shadow", O_RDONLY));
    fact("open_root_home", open("/root", O_RDONLY | O_DIRECTORY));
    fact("open_home", open("/home", O_RDONLY | O_DIRECTORY));
    fact("proc1_environ", open("/proc/1/environ", O_RDONLY));
    fact("io_uring_setup", syscall(__NR_io_uring_setup, 1, NULL));
    fact("clone3", syscall(__NR_clone3, NULL, 0));
    fact("personality_query", personality(0xffffffff));
    fact("socket_inet", socket(AF_INET, SOCK_STREAM, 0));
    fact("socket_unix", socket(AF_UNIX, SOCK_STREAM, 0));
    fact("kill_init", kill(1, SIGKILL));
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s >= 0) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9)};
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        fact("connect_loopback", connect(s, (struct sockaddr *)&a, sizeof a));
    } else {
        fact("connect_loopback", -1);
    }
    fill_tmp();
    return 0;
}
