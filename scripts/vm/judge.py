#!/usr/bin/env python3
"""Host side of scripts/vm-test: judge the records the guest's check.sh wrote to ttyS1.

Usage: judge.py RECORDS_LOG [--timed-out SECS]
Prints `PASS name` or `FAIL name: why` per check, a few `vm:` information lines, and
`N passed, M failed` alone on the last line; exits 1 when a check failed or none ran.
"""

import json
import sys

MIB = 1 << 20


class Run:
    """One `stockade run --json` as the guest recorded it."""

    def __init__(self, name):
        self.name = name
        self.stdout = []
        self.stderr = []
        self.rc = None
        self.secs = None
        self.verdict = None
        self.parse_error = None

    def finish(self, end_fields):
        for field in end_fields:
            key, _, value = field.partition("=")
            if key == "rc":
                self.rc = int(value)
            elif key == "secs":
                self.secs = int(value)
        text = "\n".join(self.stdout).strip()
        try:
            self.verdict = json.loads(text)
        except ValueError as e:
            self.parse_error = f"stdout is not one JSON verdict ({e}): {text[:300]!r}"

    def get(self, *path, default=None):
        node = self.verdict
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node


def parse(lines):
    """Records of one boot: (plan, facts, runs, done, aborts)."""
    plan, facts, runs, aborts, done = [], {}, {}, [], False
    current, into = None, None
    for raw in lines:
        line = raw.rstrip("\r\n")
        if line.startswith("@@ "):
            words = line[3:].split(" ")
            kind, rest = words[0], words[1:]
            if kind == "PLAN":
                plan = [w for w in rest if w]
            elif kind == "FACT" and rest:
                facts[rest[0]] = " ".join(rest[1:]).strip()
            elif kind == "BEGIN" and rest:
                current, into = Run(rest[0]), "stdout"
            elif kind == "STDERR" and current:
                into = "stderr"
            elif kind == "END" and current:
                current.finish(rest[1:])
                runs[current.name] = current
                current, into = None, None
            elif kind == "ABORT":
                aborts.append(" ".join(rest))
            elif kind == "DONE":
                done = True
            continue
        if current is not None:
            getattr(current, into).append(line)
    return plan, facts, runs, done, aborts


class Failure(Exception):
    pass


def need(cond, why):
    if not cond:
        raise Failure(why)


def describe(run):
    """Short context for a failure message: the status, the message and the stderr tail."""
    if run.verdict is None:
        err = " | ".join(l for l in run.stderr if l.strip())[-400:]
        return f"rc={run.rc} {run.parse_error}; stderr: {err}"
    msg = run.get("message")
    return f"status={run.get('status')} rc={run.rc}" + (f" message={msg!r}" if msg else "")


def verdict_of(runs, name, *statuses):
    run = runs.get(name)
    need(run is not None, f"no record of run {name!r} (the guest stopped before it?)")
    need(run.verdict is not None, describe(run))
    if statuses:
        need(run.get("status") in statuses,
             f"expected status {' or '.join(statuses)}, got {describe(run)}")
    return run


def payload_json(run):
    data = run.get("stdout", "data", default="")
    for line in reversed(data.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise Failure(f"payload printed no JSON line: {data[:300]!r}")


def check_version(runs, facts):
    fact = facts.get("version")
    need(fact is not None, "no record of `stockade --version`")
    need(fact.startswith("rc=0 stockade"), f"`stockade --version` gave {fact!r}")


def check_smoke(runs, facts):
    run = verdict_of(runs, "smoke", "ok")
    need(run.get("exit_code") == 0, f"exit_code {run.get('exit_code')}")
    return f"`true` in {run.get('wall_ms')} ms"


def check_isolation(runs, facts):
    run = verdict_of(runs, "isolation", "ok")
    seen = payload_json(run)
    expect = {
        "pid": 2, "ppid": 1, "ifaces": ["lo"],
        "write /x": "EROFS", "write /usr/x": "EROFS", "write /etc/x": "EROFS",
        "CapInh": "0000000000000000", "CapPrm": "0000000000000000",
        "CapEff": "0000000000000000", "CapBnd": "0000000000000000",
        "CapAmb": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2",
        "tmp_writable": True,
    }
    wrong = [f"{k}={seen.get(k)!r} (want {v!r})" for k, v in expect.items() if seen.get(k) != v]
    need(not wrong, ", ".join(wrong))
    landlock = run.get("enforced", "landlock", "status")
    need(landlock in ("fully_enforced", "partially_enforced"), f"landlock status {landlock!r}")
    return f"pid 2, only lo, EROFS, caps 0, nnp, seccomp; landlock {landlock}"


def check_oom(runs, facts):
    run = verdict_of(runs, "oom", "oom")
    need(run.get("enforced", "cgroup", "memory_limit_enforced") is True,
         "enforced.cgroup.memory_limit_enforced is not true")
    peak = run.get("memory_peak_bytes")
    need(isinstance(peak, int), f"memory_peak_bytes is {peak!r}")
    # The peak is the group's high-water mark: near the 64 MiB limit, never far above it.
    need(32 * MIB <= peak <= 66 * MIB, f"memory_peak_bytes {peak} outside 32..66 MiB")
    return f"peak {peak / MIB:.1f} MiB under 64 MiB"


def pids_fields_ok(run, limit):
    need(run.get("enforced", "cgroup", "pids_limit_enforced") is True,
         "enforced.cgroup.pids_limit_enforced is not true")
    hits = run.get("pids_limit_hits")
    need(isinstance(hits, int) and hits > 0, f"pids_limit_hits is {hits!r}, want > 0")
    peak = run.get("pids_peak")
    need(peak is None or peak <= limit, f"pids_peak {peak} above pids.max {limit}")
    return f"pids_peak {peak}, {hits} refused forks"


def check_fork_limit(runs, facts):
    run = verdict_of(runs, "fork_limit")
    need(run.get("status") not in ("setup_failed", "rejected_by_policy"), describe(run))
    seen = payload_json(run)
    need(seen.get("error") == "EAGAIN", f"fork never failed with EAGAIN: {seen}")
    need(1 <= seen.get("forked", 0) <= 15, f"forked {seen.get('forked')} children under pids.max 16")
    return f"{seen['forked']} forks then EAGAIN; " + pids_fields_ok(run, 16)


def check_fork_bomb(runs, facts):
    # The bomb's first shell execs into `sleep 60`, so only the 10 s wall limit ends the run.
    run = verdict_of(runs, "fork_bomb", "timeout_wall")
    detail = pids_fields_ok(run, 16)
    before, after = facts.get("procs_before_bomb"), facts.get("procs_after_bomb")
    need(before and after, "no process counts around the bomb")
    # `ls` and the shell themselves may differ by one or two.
    need(int(after) <= int(before) + 2, f"{before} processes before the bomb, {after} after")
    after_run = verdict_of(runs, "after_bomb", "ok")
    need(after_run.get("exit_code") == 0, f"run after the bomb: {describe(after_run)}")
    return detail + f"; {after} processes after, as before"


def check_cpu_quota(runs, facts):
    run = verdict_of(runs, "cpu_quota", "ok")
    need(run.get("enforced", "cgroup", "cpu_limit_enforced") is True,
         "enforced.cgroup.cpu_limit_enforced is not true")
    cpu, wall = run.get("cpu_ms", "total_ms"), run.get("wall_ms")
    need(isinstance(cpu, int) and isinstance(wall, int) and wall > 0, f"cpu_ms={cpu} wall_ms={wall}")
    ratio = cpu / wall
    need(0.25 <= ratio <= 0.75, f"cpu/wall = {cpu}/{wall} ms = {ratio:.2f}, want 0.25..0.75")
    return f"{cpu} ms CPU in {wall} ms wall = {ratio:.2f} of a core"


def check_cpu_time(runs, facts):
    run = verdict_of(runs, "cpu_time", "timeout_cpu")
    cpu = run.get("cpu_ms", "total_ms")
    need(isinstance(cpu, int) and 900 <= cpu <= 30000, f"cpu_ms.total_ms {cpu}, want ~1000")
    return f"stopped at {cpu} ms CPU"


def check_kill_all(runs, facts):
    run = verdict_of(runs, "kill_all", "timeout_wall")
    need(run.get("enforced", "cgroup", "kill_all") is True, "enforced.cgroup.kill_all is not true")
    # init, sh and five sleeps make 7 tasks; unless (nearly) all ran, "none left" proves little.
    peak = run.get("pids_peak")
    need(isinstance(peak, int) and peak >= 6, f"pids_peak {peak!r}: the sleepers never all ran")
    left = facts.get("kill_all_leftovers")
    need(left is not None, "no record of the leftover scan")
    need(left == "", f"sleepers left after the run: pids {left}")
    return f"{run.get('pids_peak')} tasks killed at the wall limit, none left"


def check_cgroup_root(runs, facts):
    run = verdict_of(runs, "cgroup_root", "ok")
    cg = run.get("enforced", "cgroup", default={})
    need(cg.get("backend") == "v2", f"backend {cg.get('backend')!r}")
    off = [k for k in ("memory_limit_enforced", "pids_limit_enforced", "cpu_limit_enforced")
           if cg.get(k) is not True]
    need(not off, "not enforced under --cgroup-root: " + ", ".join(off))
    need(facts.get("cgroup_root_leftovers") == "",
         f"groups left under the root: {facts.get('cgroup_root_leftovers')!r}")
    # Nothing of stockade's (no group, no supervisor leaf) may stay in a delegated subtree.
    need(facts.get("cgroup_root_rmdir") == "ok",
         f"the delegated root could not be removed; it still holds "
         f"{facts.get('cgroup_root_children')!r}")
    return f"subtree_control {facts.get('cgroup_root_subtree_control')!r}, root empty afterwards"


def check_doctor(runs, facts):
    run = runs.get("doctor")
    need(run is not None and run.verdict is not None, describe(run) if run else "no record of doctor")
    need(run.rc == 0, f"doctor exited {run.rc}")
    report = run.verdict
    need(report.get("default_profile_runs") is True, "doctor says the default profile cannot run")
    status = {c["id"]: c for c in report.get("checks", [])}
    cg = status.get("cgroup", {})
    need(cg.get("status") == "OK" and cg.get("summary", "").startswith("v2"),
         f"cgroup line does not match a cgroup v2 host with all controllers: {cg}")
    for check in ("sandbox", "userns", "seccomp", "proc"):
        need(status.get(check, {}).get("status") == "OK", f"{check}: {status.get(check)}")
    ll = status.get("landlock", {})
    # The 6.1 guest kernel offers Landlock ABI 2: enforced, but without scoping or TCP rules.
    need(ll.get("status") == "DEGRADED" and "2" in ll.get("summary", ""), f"landlock line: {ll}")
    return f"cgroup {cg.get('summary')}; landlock {ll.get('status')}"


def check_groups_removed(runs, facts):
    left = facts.get("groups_left")
    need(left is not None, "no record of the final cgroup scan")
    need(left == "", f"sandbox groups left: {left}")
    return f"top-level groups now: {facts.get('cgroup_top_dirs') or 'none'}"


def check_backend_v2(runs, facts):
    judged = [r for r in runs.values() if r.verdict is not None and r.name != "doctor"
              and r.get("status") != "setup_failed"]
    need(judged, "no run produced a verdict")
    wrong = [f"{r.name}={r.get('enforced', 'cgroup', 'backend')!r}" for r in judged
             if r.get("enforced", "cgroup", "backend") != "v2"]
    need(not wrong, "enforced.cgroup.backend is not \"v2\": " + ", ".join(wrong))


CHECKS = {name[len("check_"):]: fn for name, fn in globals().items() if name.startswith("check_")}


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    timed_out = None
    if "--timed-out" in args:
        i = args.index("--timed-out")
        timed_out = args[i + 1]
        del args[i:i + 2]
    with open(args[0], encoding="utf-8", errors="replace") as f:
        plan, facts, runs, done, aborts = parse(f)

    for abort in aborts:
        print(f"vm: guest init aborted: {abort}")
    if timed_out:
        print(f"vm: qemu was stopped after {timed_out} s (time limit)")
    landlock = next((r.get("enforced", "landlock") for r in runs.values()
                     if r.get("enforced", "landlock")), None)
    print(f"vm: guest kernel {facts.get('kernel', '?')}; controllers "
          f"{facts.get('cgroup_controllers', '?')}; landlock "
          + (f"{landlock.get('status')} (ABI {landlock.get('abi')})" if landlock else "?"))
    if "uptime_at_suite" in facts:
        print(f"vm: guest uptime {facts['uptime_at_suite']} s at suite start, "
              f"{facts.get('uptime_at_end', '?')} s at the end")

    names = [n for n in plan if n in CHECKS]
    if runs:
        names.append("backend_v2")
    passed = failed = 0
    if not plan:
        print("FAIL boot: the guest never started the suite (see the console log)")
        failed += 1
    for name in [n for n in plan if n not in CHECKS]:
        print(f"FAIL {name}: no such check (known: {' '.join(sorted(CHECKS))})")
        failed += 1
    for name in names:
        try:
            detail = CHECKS[name](runs, facts)
        except Failure as e:
            print(f"FAIL {name}: {e}")
            failed += 1
        except (ValueError, TypeError, KeyError) as e:
            print(f"FAIL {name}: malformed record ({type(e).__name__}: {e})")
            failed += 1
        else:
            print(f"PASS {name}" + (f" ({detail})" if detail else ""))
            passed += 1
    if plan and not done:
        print("FAIL suite_finished: the guest stopped before the end of the suite")
        failed += 1
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or not passed else 0)


if __name__ == "__main__":
    main()
