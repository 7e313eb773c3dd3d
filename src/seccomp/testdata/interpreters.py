# Run by src/seccomp/child_tests.rs under the kill-mode default filter: every line must work.
import asyncio, concurrent.futures, hashlib, json, multiprocessing, os, queue, resource
import select, shutil, signal, socket, subprocess, sys, tempfile, threading, time

out = []
threads = [threading.Thread(target=lambda: out.append(sum(range(10000)))) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
assert len(out) == 4
assert subprocess.run(["sh", "-c", "echo hi | cat"], capture_output=True, text=True).stdout == "hi\n"
assert subprocess.check_output([sys.executable, "-c", "print(2)"]) == b"2\n"
p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
assert p.communicate(b"x")[0] == b"x"
d = tempfile.mkdtemp()
with open(os.path.join(d, "a.json"), "w") as f:
    json.dump({"a": 1}, f)
os.rename(os.path.join(d, "a.json"), os.path.join(d, "b.json"))
os.symlink("b.json", os.path.join(d, "l"))
os.readlink(os.path.join(d, "l"))
os.chmod(os.path.join(d, "b.json"), 0o600)
os.utime(os.path.join(d, "b.json"))
os.makedirs(os.path.join(d, "x", "y"))
shutil.copy2(os.path.join(d, "b.json"), os.path.join(d, "c.json"))
shutil.copytree(os.path.join(d, "x"), os.path.join(d, "z"))
os.truncate(os.path.join(d, "c.json"), 1)
shutil.rmtree(d)
hashlib.sha256(os.urandom(16)).hexdigest()
a, b = socket.socketpair()
a.send(b"x")
assert b.recv(1) == b"x"
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect("/nonexistent/socket")
except OSError:
    pass
r, w = os.pipe()
os.write(w, b"z")
select.select([r], [], [], 1)
os.read(r, 1)
hits = []
signal.signal(signal.SIGUSR1, lambda *a: hits.append(1))
os.kill(os.getpid(), signal.SIGUSR1)
signal.setitimer(signal.ITIMER_REAL, 0)
time.sleep(0.01)
time.process_time()


async def main():
    await asyncio.sleep(0.01)
    proc = await asyncio.create_subprocess_exec("true")
    return await proc.wait()


assert asyncio.run(main()) == 0
with concurrent.futures.ThreadPoolExecutor(2) as ex:
    assert list(ex.map(abs, [-1, -2])) == [1, 2]
with multiprocessing.Pool(2) as pool:
    assert pool.map(abs, [-3, -4]) == [3, 4]
q = queue.Queue()
q.put(1)
q.get()
os.cpu_count(), os.getloadavg(), os.uname(), os.getcwd(), os.getuid()
resource.getrusage(resource.RUSAGE_SELF)
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
print("PY-OK")
