"""Drives a live `stockade serve` with PyPI's `aiopyston` (ffaanngg/pyston, "Pyston" in Piston's
readme), used unchanged. Usage: python pyston_client.py SERVER_URL
Exits non-zero on the first failed check; prints "OK <n> checks" otherwise."""
import asyncio
import sys

from pyston import File, PystonClient
from pyston.exceptions import ExecutionError

checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    checks += 1


async def main(server):
    # Both base URLs clients use: emkc.org's /api/v2/piston/ and a self-hosted /api/v2/. The client
    # appends "runtimes/" and "execute/" (trailing slashes), sends a raw Authorization key, and
    # file names "".
    for base in (f"{server}/api/v2/piston/", f"{server}/api/v2/"):
        client = PystonClient(api_key="not-checked", base_url=base)
        runtimes = await client.runtimes()
        names = {r.language for r in runtimes}
        check({"python", "bash", "javascript"} <= names, f"runtimes: {names}")
        languages = await client.languages()
        check("python" in languages, languages)
        found = await client.get_runtimes("py")
        check(found and found[0].language == "python", found)

        out = await client.execute("python", [File("print(sum(range(10)))")])
        check(out.run_stage.stdout == "45\n", out.raw_json)
        check(out.run_stage.code == 0 and out.run_stage.signal is None, out.raw_json)
        check(out.success and str(out) == "45\n", out.raw_json)
        check(out.langauge == "python" and out.version, out.raw_json)

        out = await client.execute(
            "python",
            [File("import sys, helper\nprint(helper.V, sys.argv[1:], input())", "main.py"),
             File("V = 'lib'", "helper.py")],
            stdin="line",
            args=["x"],
        )
        check(out.run_stage.output == "lib ['x'] line\n", out.raw_json)

        out = await client.execute("bash", [File("echo fail >&2; exit 2")])
        check(out.run_stage.code == 2 and out.run_stage.output == "fail\n", out.raw_json)
        check(out.raw_json["run"]["status"] == "RE", out.raw_json)

        try:
            await client.execute("cobol", [File("1")])
            check(False, "unknown language accepted")
        except ExecutionError as e:
            check(str(e) == "cobol-* runtime is unknown", str(e))
        await client.close_session()
    print(f"OK {checks} checks")


asyncio.run(main(sys.argv[1]))
