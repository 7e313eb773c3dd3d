// Hashes, HMAC, random bytes, a key derivation and a cipher round trip.
const crypto = require('crypto');

console.log('sha256=' + crypto.createHash('sha256').update('compat').digest('hex'));
console.log('hmac=' + crypto.createHmac('sha512', 'key').update('compat').digest('base64'));
console.log('random_bytes=' + crypto.randomBytes(32).length);
console.log('random_uuid_ok=' + /^[0-9a-f-]{36}$/.test(crypto.randomUUID()));
console.log('pbkdf2=' + crypto.pbkdf2Sync('pw', 'salt', 1000, 16, 'sha256').toString('hex'));
const key = crypto.scryptSync('pw', 'salt', 32);
const iv = Buffer.alloc(16, 1);
const c = crypto.createCipheriv('aes-256-cbc', key, iv);
const enc = Buffer.concat([c.update('secret text'), c.final()]);
const d = crypto.createDecipheriv('aes-256-cbc', key, iv);
console.log('aes_roundtrip=' + Buffer.concat([d.update(enc), d.final()]).toString());
crypto.generateKeyPair('ec', { namedCurve: 'P-256' }, (err, pub, priv) => {
  const sig = crypto.sign('sha256', Buffer.from('m'), priv);
  console.log('ec_sign_verify=' + (!err && crypto.verify('sha256', Buffer.from('m'), pub, sig)));
});
