// zlib: deflate, gzip and brotli round trips, sync and on the thread pool.
const zlib = require('zlib');

const text = Buffer.from('compatibility '.repeat(1000));
console.log('deflate_roundtrip=' + zlib.inflateSync(zlib.deflateSync(text)).equals(text));
console.log('gzip_size=' + zlib.gzipSync(text, { level: 9 }).length);
console.log('brotli_roundtrip=' + zlib.brotliDecompressSync(zlib.brotliCompressSync(text)).equals(text));
zlib.gzip(text, (err, gz) => {
  zlib.gunzip(gz, (err2, back) => console.log('async_gzip_roundtrip=' + (!err && !err2 && back.equals(text))));
});
