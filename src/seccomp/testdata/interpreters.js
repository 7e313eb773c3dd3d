// Run by src/seccomp/child_tests.rs under the kill-mode default filter: every line must work.
const { Worker } = require('worker_threads');
const cp = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const assert = require('assert');

const w = new Worker("require('worker_threads').parentPort.postMessage(6 * 7)", { eval: true });
w.on('message', async (m) => {
  assert.strictEqual(m, 42);
  assert.strictEqual(cp.execSync('echo hi | cat').toString(), 'hi\n');
  assert.strictEqual(cp.spawnSync(process.execPath, ['-e', 'console.log(2)']).stdout.toString(), '2\n');
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'stockade-'));
  fs.writeFileSync(path.join(d, 'a'), 'x');
  fs.renameSync(path.join(d, 'a'), path.join(d, 'b'));
  fs.readdirSync(d);
  fs.statSync(path.join(d, 'b'));
  fs.chmodSync(path.join(d, 'b'), 0o600);
  fs.symlinkSync('b', path.join(d, 'l'));
  fs.readlinkSync(path.join(d, 'l'));
  assert.strictEqual((await fs.promises.readFile(path.join(d, 'b'))).toString(), 'x');
  fs.copyFileSync(path.join(d, 'b'), path.join(d, 'c'));
  fs.rmSync(d, { recursive: true });
  crypto.createHash('sha256').update(crypto.randomBytes(8)).digest('hex');
  os.cpus(); os.totalmem(); os.freemem(); os.uptime(); os.hostname(); os.loadavg();
  await new Promise((resolve) => {
    const c = cp.spawn('sh', ['-c', 'echo async']);
    c.on('exit', (code) => { assert.strictEqual(code, 0); resolve(); });
  });
  await new Promise((resolve) => cp.exec('ls / | wc -l', resolve));
  await new Promise((resolve) => setTimeout(resolve, 10));
  await w.terminate();
  console.log('NODE-OK');
});
