# Process-local calls that harm nobody else: anonymous memory files, the own CPU affinity, a lower
# priority, resource usage. Each prints whether it worked and what it returned.
import os
import resource


def attempt(name, call):
    try:
        print("%s=%s" % (name, call()))
    except OSError as e:
        print("%s=OSError %s" % (name, e.errno))


def memfd():
    fd = os.memfd_create("compat")
    os.write(fd, b"data")
    os.lseek(fd, 0, os.SEEK_SET)
    data = os.read(fd, 4)
    os.close(fd)
    return data.decode()


def affinity():
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    return os.sched_getaffinity(0) == cpus


attempt("memfd_create", memfd)
attempt("sched_setaffinity_own", affinity)
attempt("nice_lower", lambda: os.nice(1) >= 1)
attempt("getrusage", lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0)
attempt("cpu_count", os.cpu_count)
attempt("getpriority", lambda: os.getpriority(os.PRIO_PROCESS, 0) >= 0)
