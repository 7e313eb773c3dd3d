"""Drives a live `stockade serve` with PyPI's `piston-rspy` (Python bindings of the piston_rs
crate), used unchanged. Usage: python piston_rspy_client.py SERVER_URL
Exits non-zero on the first failed check; prints "OK <n> checks" otherwise."""
import asyncio
import os
import sys

import piston_rspy

checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    checks += 1


async def main(server):
    client = piston_rspy.Client.with_url(f"{server}/api/v2")
    runtimes = await client.fetch_runtimes()
    langs = {r.language for r in runtimes}
    check("python" in langs, langs)
    check(all(isinstance(r.aliases, list) for r in runtimes), "aliases are lists")

    # piston_rs sends version "*", compile_timeout 30000 and memory limits -1 by default.
    executor = (
        piston_rspy.Executor()
        .set_language("python")
        .add_file(piston_rspy.File(name="main.py", content="import sys\nprint('rs', sys.argv[1:])"))
        .add_args(["a", "b"])
    )
    response = await client.execute(executor)
    check(response.is_ok() and response.status == 200, response)
    check(response.language == "python", response.language)
    check(response.run.stdout == "rs ['a', 'b']\n", response.run.stdout)
    check(response.run.code == 0 and response.run.signal is None and response.run.is_ok(), response.run)
    check(response.compile is None, "no compile stage")

    executor = piston_rspy.Executor().set_language("bash").add_file(
        piston_rspy.File(content="kill -SEGV $$")
    )
    response = await client.execute(executor)
    check(response.run.signal == "SIGSEGV" and response.run.code is None, (response.run.signal, response.run.code))
    check(not response.run.is_ok(), "a signal is not a success")
    print(f"OK {checks} checks")


asyncio.run(main(sys.argv[1]))
# piston_rspy is a Rust extension with its own runtime threads, which can crash while the
# interpreter finalizes (seen: SIGSEGV after every check had passed). Every check above has run
# and raised on failure, so leave without finalizing.
sys.stdout.flush()
os._exit(0)
