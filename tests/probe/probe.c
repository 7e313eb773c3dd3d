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
    fact("unshare_user", unshare(CLONE_NEWUSER));
    fact("unshare_ns", unshare(CLONE_NEWNS));
    fact("mount", mount("none", "/tmp", "tmpfs", 0, NULL));
    fact("ptrace", ptrace(PTRACE_TRACEME, 0, 0, 0));
    fact("keyctl", syscall(__NR_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
    fact("bpf", syscall(__NR_bpf, 0, NULL, 0));
    fact("io_uring_setup", syscall(__NR_io_uring_setup, 1, NULL));
    fact("perf_event_open", syscall(__NR_perf_event_open, NULL, 0, -1, -1, 0));
    fact("clone3", syscall(__NR_clone3, NULL, 0));
    fact("personality_query", personality(0xffffffff));
    fact("personality_exec", personality(READ_IMPLIES_EXEC));
    char c = 'x';
    fact("tiocsti", ioctl(0, TIOCSTI, &c));
    fact("tiocsti_high_bits", syscall(__NR_ioctl, 0, 0xdead00000000UL | TIOCSTI, &c));
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
