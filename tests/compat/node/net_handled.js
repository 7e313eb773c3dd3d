// Code that tries the network and handles the failure: a fetch to a closed loopback port and a DNS
// query to a closed loopback resolver must fail with an error the program catches, never a kill.
// Only loopback is addressed, so the bare run sends nothing off the host.
const dns = require('dns');
const net = require('net');

async function main() {
  try {
    await fetch('http://127.0.0.1:1/', { signal: AbortSignal.timeout(5000) });
    console.log('fetch=succeeded');
  } catch (e) {
    console.log('fetch=' + e.name + ' caught');
  }
  const resolver = new dns.promises.Resolver({ timeout: 1000, tries: 1 });
  resolver.setServers(['127.0.0.1:1']);
  try {
    await resolver.resolve4('example.invalid');
    console.log('dns_resolve=succeeded');
  } catch (e) {
    console.log('dns_resolve=error caught');
  }
  await new Promise((resolve) => {
    const s = net.connect(1, '127.0.0.1');
    s.on('error', () => { console.log('net_connect=error caught'); resolve(); });
    s.on('connect', () => { console.log('net_connect=succeeded'); s.destroy(); resolve(); });
  });
  const found = await dns.promises.lookup('localhost').then(() => true, () => false);
  console.log('lookup_localhost=' + found);
}
main();
