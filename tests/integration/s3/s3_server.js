#!/usr/bin/env node
// A real S3-protocol server for the tests: npm `s3rver` on loopback, behind a
// SigV4 check made with npm `aws4` (s3rver accepts any well-formed V4
// signature, so without this a wrong secret would go unnoticed). The check
// recomputes each request's signature from the headers the client says it
// signed and answers 403 SignatureDoesNotMatch / InvalidAccessKeyId /
// AccessDenied as S3 does.
//
//   node s3_server.js --dir DIR --port-file FILE [--port N] [--bucket NAME]...
//                     [--access-key ID --secret KEY]
//
// --port 0 (the default) lets the kernel pick; the bound port is written to
// --port-file (atomically) once listening. Objects live under --dir, so a
// server restarted on the same port and directory sees what the last one stored
// (multipart uploads in progress included).
'use strict';
const fs = require('fs');
const http = require('http');
const path = require('path');

const args = { port: '0', bucket: [], 'access-key': 'S3RVER', secret: 'S3RVER',
  'node-modules': path.join(__dirname, '..', '..', 'node', 'node_modules') };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  const v = process.argv[i + 1];
  if (v === undefined) throw new Error(`--${k} needs a value`);
  if (k === 'bucket') args.bucket.push(v); else args[k] = v;
}
if (!args.dir || !args['port-file']) throw new Error('usage: s3_server.js --dir DIR --port-file FILE');
const S3rver = require(path.join(args['node-modules'], 's3rver'));
const aws4 = require(path.join(args['node-modules'], 'aws4'));
const secrets = new Map([[args['access-key'], args.secret]]);
// s3rver's own check looks the key id up in its account registry (and then
// accepts any V4 signature): register ours with its dummy account.
require(path.join(args['node-modules'], 's3rver', 'lib', 'models', 'account'))
  .DUMMY_ACCOUNT.createKeyPair(args['access-key'], args.secret);

function s3Error(res, status, code, message, resource) {
  const xml = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>' + code + '</Code><Message>' + message +
    '</Message><Resource>' + resource.replace(/&/g, '&amp;').replace(/</g, '&lt;') + '</Resource></Error>';
  res.writeHead(status, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(xml) });
  res.end(xml);
}

// Returns null when the request carries a valid SigV4 Authorization header,
// otherwise [status, code, message].
function checkSignature(req) {
  const auth = req.headers.authorization || '';
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, *SignedHeaders=([a-z0-9;-]+), *Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return [403, 'AccessDenied', 'Anonymous or malformed authorization is not allowed here'];
  const [, keyId, date, region, signedList, signature] = m;
  const secret = secrets.get(keyId);
  if (secret === undefined) {
    return [403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.'];
  }
  const signed = signedList.split(';');
  if (!signed.includes('host') || !signed.includes('x-amz-date') || !signed.includes('x-amz-content-sha256')) {
    return [403, 'AccessDenied', 'host, x-amz-date and x-amz-content-sha256 must be signed'];
  }
  const headers = {};
  const include = {};
  for (const h of signed) {
    if (req.headers[h] === undefined) return [403, 'AccessDenied', `signed header ${h} is missing`];
    headers[h] = req.headers[h];
    include[h] = true;
  }
  if (!String(headers['x-amz-date']).startsWith(date)) return [403, 'AccessDenied', 'credential date != x-amz-date'];
  const expected = aws4.sign({ method: req.method, path: req.url, headers, service: 's3', region,
    extraHeadersToInclude: include }, { accessKeyId: keyId, secretAccessKey: secret });
  const got = /Signature=([0-9a-f]{64})/.exec(expected.headers.Authorization)[1];
  if (got !== signature) {
    return [403, 'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.'];
  }
  return null;
}

async function main() {
  const s3 = new S3rver({ directory: args.dir, silent: true, vhostBuckets: false,
    configureBuckets: args.bucket.map(name => ({ name, configs: [] })) });
  await s3.configureBuckets();
  const handle = s3.callback();
  const server = http.createServer((req, res) => {
    const bad = checkSignature(req);
    if (bad) {
      req.resume();  // drain the body so the connection stays usable
      return s3Error(res, bad[0], bad[1], bad[2], req.url.split('?')[0]);
    }
    return handle(req, res);
  });
  server.listen(Number(args.port), '127.0.0.1', () => {
    const port = server.address().port;
    fs.writeFileSync(args['port-file'] + '.tmp', port + '\n');
    fs.renameSync(args['port-file'] + '.tmp', args['port-file']);
    console.log(`s3_server: listening on 127.0.0.1:${port}, data in ${args.dir}`);
  });
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}
main().catch(err => { console.error(err); process.exit(1); });
