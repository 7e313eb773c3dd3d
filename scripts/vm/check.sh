# Guest side of scripts/vm-test (busybox sh; started by /init with fd 3 on ttyS1).
#
# Runs the selected checks with /mnt/host/stockade and writes delimited records to fd 3:
#   @@ PLAN name...                 the checks this boot runs, in order
#   @@ FACT key value...            something observed in the guest
#   @@ BEGIN name                   a stockade run: its stdout (the verdict JSON) follows,
#   @@ STDERR                       then its stderr,
#   @@ END name rc=N secs=S         then its exit code and wall seconds as the guest saw them
# The host (scripts/vm/judge.py) judges the records; nothing here decides pass or fail.
# The selection comes from the kernel command line: stockade.checks=oom,cpu_quota (default all).

S=/mnt/host/stockade
ALL="version smoke isolation oom fork_limit fork_bomb cpu_quota cpu_time kill_all cgroup_root doctor groups_removed"

rec() { echo "$@" >&3; }
say() { echo "vm-check: $*"; }

# run NAME STOCKADE-RUN-ARGS...: one `stockade run --json`, recorded whole.
run() {
	name=$1
	shift
	say "$name: stockade run $*"
	t0=$(date +%s)
	"$S" run --json "$@" >/tmp/run.out 2>/tmp/run.err
	rc=$?
	t1=$(date +%s)
	{
		echo "@@ BEGIN $name"
		cat /tmp/run.out
		echo
		echo "@@ STDERR"
		cat /tmp/run.err
		echo
		echo "@@ END $name rc=$rc secs=$((t1 - t0))"
	} >&3
}

# The pids of processes whose command line contains WORD (busybox has no pgrep -f on every build).
pids_with() {
	for d in /proc/[0-9]*; do
		cmd=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) || continue
		case "$cmd" in *"$1"*) echo "${d#/proc/}" ;; esac
	done
}

# Every sandbox group left anywhere in the cgroup2 tree.
leftover_groups() {
	find /sys/fs/cgroup -mindepth 1 -type d -name 'sandbox-*' 2>/dev/null | tr '\n' ' '
}

check_version() {
	out=$("$S" --version 2>&1)
	rec "@@ FACT version rc=$? $out"
}

check_smoke() {
	run smoke --wall-time 60s -- true
}

# What a payload sees of its own isolation, printed as one JSON object.
ISOLATION_PY='
import errno, json, os
r = {"pid": os.getpid(), "ppid": os.getppid()}
with open("/proc/net/dev") as f:
    r["ifaces"] = sorted(l.split(":")[0].strip() for l in f.readlines()[2:])
for path in ("/x", "/usr/x", "/etc/x"):
    try:
        open(path, "w").close()
        r["write " + path] = "ok"
    except OSError as e:
        r["write " + path] = errno.errorcode.get(e.errno, str(e.errno))
with open("/proc/self/status") as f:
    st = dict(l.rstrip("\n").split(":\t", 1) for l in f if ":\t" in l)
for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"):
    r[k] = st.get(k, "").strip()
r["tmp_writable"] = os.access("/tmp", os.W_OK)
print(json.dumps(r))
'

check_isolation() {
	run isolation --wall-time 120s -- python3 -c "$ISOLATION_PY"
}

check_oom() {
	# 1 MiB at a time; bytearray(n) zero-fills, so every page is touched.
	run oom --memory 64MiB --wall-time 120s -- python3 -c '
b = []
while len(b) < 1024:
    b.append(bytearray(1 << 20))
print("allocated", len(b), "MiB")'
}

check_fork_limit() {
	# Children sleep, so every fork holds a pid until the limit answers EAGAIN.
	run fork_limit --pids 16 --wall-time 120s -- python3 -c '
import errno, json, os, time
n, err = 0, None
for _ in range(64):
    try:
        pid = os.fork()
    except OSError as e:
        err = errno.errorcode.get(e.errno, str(e.errno))
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    n += 1
print(json.dumps({"forked": n, "error": err}), flush=True)
os._exit(0)'
}

check_fork_bomb() {
	before=$(ls -d /proc/[0-9]* | wc -l)
	# dash runs the special builtin `:` before a function of that name, so the bomb is named. Its
	# "Cannot fork" flood goes to /dev/null (else the output cap ends the run early), and the
	# first shell then execs into sleep, which needs no new pid, so the bomb runs until the wall
	# limit.
	run fork_bomb --pids 16 --wall-time 10s -- sh -c 'exec 2>/dev/null; bomb() { bomb | bomb & }; bomb; exec sleep 60'
	rec "@@ FACT procs_before_bomb $before"
	rec "@@ FACT procs_after_bomb $(ls -d /proc/[0-9]* | wc -l)"
	# The VM (and stockade) must still work after the bomb.
	run after_bomb --wall-time 60s -- true
}

check_cpu_quota() {
	run cpu_quota --cpus 0.5 --wall-time 120s -- python3 -c '
import time
end = time.monotonic() + 6
while time.monotonic() < end:
    pass'
}

check_cpu_time() {
	run cpu_time --cpu-time 1s --wall-time 120s -- python3 -c 'while True: pass'
}

check_kill_all() {
	# A tree of sleepers, one of them in its own session, outlives the wall limit.
	run kill_all --wall-time 5s -- sh -c 'for i in 1 2 3; do sleep 1007 & done; setsid sleep 1007 & sleep 1007'
	sleep 1
	left=$(pids_with "sleep 1007" | tr '\n' ' ')
	rec "@@ FACT kill_all_leftovers $left"
	# Clean up for the later checks; $left is a list of pids, split on purpose.
	# shellcheck disable=SC2086
	[ -z "$left" ] || kill -9 $left 2>/dev/null
}

check_cgroup_root() {
	# A delegated subtree with no controllers enabled yet: stockade enables them itself.
	dir=/sys/fs/cgroup/vmtest-delegated
	mkdir -p "$dir"
	run cgroup_root --cgroup-root "$dir" --memory 64MiB --pids 32 --cpus 1 --wall-time 60s -- true
	rec "@@ FACT cgroup_root_subtree_control $(cat "$dir/cgroup.subtree_control")"
	rec "@@ FACT cgroup_root_leftovers $(find "$dir" -mindepth 1 -type d -name 'sandbox-*' | tr '\n' ' ')"
	rec "@@ FACT cgroup_root_children $(find "$dir" -mindepth 1 -type d | tr '\n' ' ')"
	rmdir "$dir" && rec "@@ FACT cgroup_root_rmdir ok"
}

# `stockade doctor --json` on a real cgroup v2 host: its report must match the guest.
check_doctor() {
	t0=$(date +%s)
	"$S" doctor --json >/tmp/run.out 2>/tmp/run.err
	rc=$?
	{
		echo "@@ BEGIN doctor"
		cat /tmp/run.out
		echo
		echo "@@ STDERR"
		cat /tmp/run.err
		echo
		echo "@@ END doctor rc=$rc secs=$(($(date +%s) - t0))"
	} >&3
}

check_groups_removed() {
	rec "@@ FACT groups_left $(leftover_groups)"
	rec "@@ FACT cgroup_top_dirs $(find /sys/fs/cgroup -mindepth 1 -maxdepth 1 -type d | tr '\n' ' ')"
}

selected=$ALL
for tok in $(cat /proc/cmdline); do
	case "$tok" in stockade.checks=*) selected=$(echo "${tok#stockade.checks=}" | tr ',' ' ') ;; esac
done
[ "$selected" = all ] && selected=$ALL

rec "@@ PLAN $selected"
rec "@@ FACT kernel $(uname -r)"
rec "@@ FACT uptime_at_suite $(cut -d' ' -f1 /proc/uptime)"
rec "@@ FACT lsm $(cat /sys/kernel/security/lsm 2>/dev/null)"
rec "@@ FACT cgroup_controllers $(cat /sys/fs/cgroup/cgroup.controllers)"
for c in $selected; do
	case " $ALL " in
		*" $c "*) "check_$c" ;;
		*) rec "@@ FACT unknown_check $c" ;;
	esac
done
rec "@@ FACT uptime_at_end $(cut -d' ' -f1 /proc/uptime)"
rec "@@ DONE"
