// Drives a live `stockade serve` with the npm package `piston-client` (dthree/node-piston), used
// unchanged. Usage: node piston_client.mjs SERVER_URL NODE_MODULES_DIR
// Exits non-zero on the first failed check; prints "OK <n> checks" otherwise.
import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";
import path from "node:path";

const [server, modules] = process.argv.slice(2);
const { piston } = await import(pathToFileURL(path.join(modules, "piston-client", "index.js")).href);
let checks = 0;
const check = (fn) => { fn(); checks += 1; };

const client = piston({ server });

const runtimes = await client.runtimes();
check(() => assert.ok(Array.isArray(runtimes), JSON.stringify(runtimes)));
const python = runtimes.find((r) => r.language === "python");
check(() => assert.ok(python && /^\d+\.\d+\.\d+$/.test(python.version), JSON.stringify(runtimes)));
check(() => assert.ok(Array.isArray(python.aliases)));

// The README's example. The client posts with node-fetch's default text/plain content type and
// always sends run_memory_limit: -1, args ["1","2","3"], compile_timeout 10000.
let result = await client.execute("python", 'print("Hello World!")');
check(() => assert.equal(result.run.stdout, "Hello World!\n", JSON.stringify(result)));
check(() => assert.equal(result.run.code, 0));
check(() => assert.equal(result.run.signal, null));
check(() => assert.equal(result.run.output, "Hello World!\n"));
check(() => assert.equal(result.language, "python"));
check(() => assert.equal(result.version, python.version));

result = await client.execute("python", "import sys\nprint(sys.argv[1:])");
check(() => assert.equal(result.run.stdout, "['1', '2', '3']\n", JSON.stringify(result)));

result = await client.execute("python", "import sys\nprint(sys.stdin.read().upper(), end='')\nsys.exit(4)", {
  stdin: "quiet\n",
  args: [],
  runTimeout: 2000,
});
check(() => assert.equal(result.run.stdout, "QUIET\n", JSON.stringify(result)));
check(() => assert.equal(result.run.code, 4));

// Piston's JavaScript runtime is named "javascript"; stockade's node profile answers to it.
result = await client.execute("javascript", "console.log([1, 2].map((x) => x * 21).join(','))");
check(() => assert.equal(result.run.stdout, "21,42\n", JSON.stringify(result)));
check(() => assert.equal(result.language, "javascript"));

result = await client.execute("bash", "echo $((6 * 7)) >&2");
check(() => assert.equal(result.run.stderr, "42\n", JSON.stringify(result)));

// A timeout as Piston reports it.
result = await client.execute("python", "import time\ntime.sleep(5)", { runTimeout: 300 });
check(() => assert.equal(result.run.signal, "SIGKILL", JSON.stringify(result)));
check(() => assert.equal(result.run.status, "TO"));

// Validation errors come back as Piston's {message}.
result = await client.execute({ language: "python", version: "9.x", files: [{ content: "1" }] });
check(() => assert.equal(result.message, "python-9.x runtime is unknown", JSON.stringify(result)));

console.log(`OK ${checks} checks`);
