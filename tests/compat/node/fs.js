// fs: files and directories in the temp dir, streams, watch, stat, promises, a symlink.
const fs = require('fs');
const os = require('os');
const path = require('path');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'compat-'));
const file = path.join(dir, 'a.txt');
fs.writeFileSync(file, 'line1\n');
fs.appendFileSync(file, 'line2\n');
console.log('read=' + JSON.stringify(fs.readFileSync(file, 'utf8')));
console.log('stat_size=' + fs.statSync(file).size);
fs.symlinkSync(file, path.join(dir, 'link'));
console.log('readlink_ok=' + (fs.readlinkSync(path.join(dir, 'link')) === file));
fs.mkdirSync(path.join(dir, 'x/y/z'), { recursive: true });
console.log('readdir=' + fs.readdirSync(dir).sort().join(','));
fs.renameSync(file, path.join(dir, 'b.txt'));
const watcher = fs.watch(dir, () => {});
watcher.close();
console.log('watch_ok=true');
fs.createReadStream(path.join(dir, 'b.txt')).on('data', (d) => console.log('stream_bytes=' + d.length))
  .on('close', async () => {
    await fs.promises.rm(dir, { recursive: true });
    console.log('removed=' + !fs.existsSync(dir));
  });
