/* C workload: threads, fork + pipe + wait, mmap, a temporary file, clock and uname. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void *square(void *arg) {
    long n = (long)arg;
    return (void *)(n * n);
}

int main(void) {
    pthread_t t[4];
    long sum = 0;
    for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, square, (void *)(i + 1));
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        sum += (long)r;
    }
    printf("threads_sum=%ld\n", sum);

    int fds[2];
    if (pipe(fds) != 0) return 1;
    pid_t pid = fork();
    if (pid == 0) {
        write(fds[1], "child", 5);
        _exit(7);
    }
    char buf[8] = {0};
    read(fds[0], buf, 5);
    int status;
    waitpid(pid, &status, 0);
    printf("fork_pipe=%s,%d\n", buf, WEXITSTATUS(status));

    char *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(m, 'x', 1 << 20);
    printf("mmap_ok=%d\n", m != MAP_FAILED && m[12345] == 'x');
    munmap(m, 1 << 20);

    char path[] = "/tmp/compatXXXXXX";
    const char *tmp = getenv("TMPDIR");
    char full[512];
    snprintf(full, sizeof full, "%s/compatXXXXXX", tmp ? tmp : "/tmp");
    int fd = mkstemp(tmp ? full : path);
    printf("mkstemp_ok=%d\n", fd >= 0 && write(fd, "data", 4) == 4);
    unlink(tmp ? full : path);

    struct timespec ts;
    printf("clock_ok=%d\n", clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
    struct utsname u;
    printf("uname_sysname=%s\n", uname(&u) == 0 ? u.sysname : "error");
    return 0;
}
