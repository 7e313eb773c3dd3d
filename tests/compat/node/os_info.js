// os: information calls programs make at start-up. Values that describe the machine differ by
// design (interfaces, uptime); what must agree is that each call works and returns its shape.
const os = require('os');

console.log('cpus_count=' + os.cpus().length);
console.log('network_interfaces_object=' + (typeof os.networkInterfaces() === 'object'));
const user = os.userInfo();
console.log('user_info_uid=' + user.uid);
console.log('user_info_has_name=' + (typeof user.username === 'string'));
console.log('totalmem_positive=' + (os.totalmem() > 0));
console.log('loadavg_length=' + os.loadavg().length);
console.log('platform=' + os.platform() + ',' + os.arch() + ',' + os.endianness());
console.log('hostname_string=' + (typeof os.hostname() === 'string'));
console.log('tmpdir_set=' + (os.tmpdir().length > 0));
console.log('uptime_number=' + (typeof os.uptime() === 'number'));
console.log('release_string=' + (typeof os.release() === 'string'));
