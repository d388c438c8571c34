// The dashboard's gRPC-web codec (client/web/src/grpc_web.js) on its own:
// frames and -text bodies fed in every possible chunking, since a browser's
// fetch stream may split the body anywhere (inside a frame header, inside a
// base64 group, between a padded segment and the next).
//   node js_codec_test.mjs
import assert from 'node:assert/strict';
import { Base64StreamDecoder, FrameParser, encodeFrame, parseTrailers } from '../../../client/web/src/grpc_web.js';

const enc = new TextEncoder();
const frames = [
  encodeFrame(0, enc.encode('a')),
  encodeFrame(0, new Uint8Array(0)),
  encodeFrame(0, enc.encode('hello, world')),
  encodeFrame(0x80, enc.encode('grpc-status: 5\r\ngrpc-message: job%20x\r\n')),
];
const body = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
let o = 0;
for (const f of frames) { body.set(f, o); o += f.length; }
// -text as the gateway sends it: each frame base64-encoded on its own.
const text = frames.map((f) => Buffer.from(f).toString('base64')).join('');
assert.ok(text.indexOf('=') < text.length - 2, 'padding sits in the middle of the text body');

function collect(parser, pieces) {
  const out = [];
  for (const p of pieces) out.push(...parser.push(p));
  parser.finish();
  return out;
}
function check(got) {
  assert.equal(got.length, 4);
  assert.deepEqual(Array.from(got[2].payload), Array.from(enc.encode('hello, world')));
  assert.equal(got[1].payload.length, 0);
  assert.equal(got[3].flags, 0x80);
  assert.deepEqual(parseTrailers(got[3].payload), { 'grpc-status': '5', 'grpc-message': 'job%20x' });
}

let cases = 0;
for (let i = 0; i <= body.length; i++) {
  for (let j = i; j <= body.length; j += 3) {
    check(collect(new FrameParser(), [body.slice(0, i), body.slice(i, j), body.slice(j)]));
    cases++;
  }
}
for (let i = 0; i <= text.length; i++) {
  for (let j = i; j <= text.length; j += 2) {
    const d = new Base64StreamDecoder();
    const bytes = [d.push(text.slice(0, i)), d.push(text.slice(i, j)), d.push(text.slice(j))];
    d.finish();
    check(collect(new FrameParser(), bytes));
    cases++;
  }
}
// A body cut inside a frame, or text with a dangling group, is an error.
assert.throws(() => collect(new FrameParser(), [body.slice(0, body.length - 1)]), /ends inside a frame/);
const d = new Base64StreamDecoder();
d.push(text.slice(0, text.length - 1));
assert.throws(() => d.finish(), /dangling/);
console.log(`js_codec_test: ${cases} chunkings decoded identically`);
