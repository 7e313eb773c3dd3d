// worker_threads: two workers compute and post results; shared memory with Atomics.
const { Worker } = require('worker_threads');

const shared = new SharedArrayBuffer(4);
const counter = new Int32Array(shared);
const code = `
const { parentPort, workerData } = require('worker_threads');
let sum = 0;
for (let i = 0; i < 100000; i++) sum += i % workerData.mod;
Atomics.add(new Int32Array(workerData.shared), 0, 1);
parentPort.postMessage(sum);`;
const results = [3, 7].map((mod) => new Promise((resolve, reject) => {
  const w = new Worker(code, { eval: true, workerData: { mod, shared } });
  w.on('message', resolve);
  w.on('error', reject);
}));
Promise.all(results).then((sums) => {
  console.log('sums=' + sums.join(','));
  console.log('atomics=' + Atomics.load(counter, 0));
}, (e) => console.log('worker_error=' + e.message));
