// child_process: exec through a shell, spawn with pipes, execFile with an exit code, fork with IPC.
const cp = require('child_process');

console.log('exec_sync=' + cp.execSync('echo hello | tr a-z A-Z').toString().trim());
const r = cp.spawnSync('sh', ['-c', 'cat; exit 3'], { input: 'piped' });
console.log('spawn_sync=' + r.stdout.toString() + ',' + r.status);
cp.execFile('sh', ['-c', 'exit 5'], (err) => console.log('exec_file_code=' + (err && err.code)));
if (process.argv[2] === 'child') {
  process.on('message', (m) => { process.send(m * 2); process.exit(0); });
} else {
  const child = cp.fork(__filename, ['child'], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  child.on('message', (m) => console.log('fork_ipc=' + m));
  child.send(21);
}
