// A small gRPC-web client over fetch (browser and Node 18+), speaking the
// protocol of grpc/grpc doc/PROTOCOL-WEB.md as the coordinator's gateway
// (server/grpcweb) serves it:
//   request  : POST /pkg.Service/Method, body = frames (flag byte, 4-byte
//              big-endian length, message); -text mode base64-encodes it.
//   response : data frames (flag 0x00) then one trailer frame (flag 0x80) whose
//              payload is "grpc-status: N\r\ngrpc-message: ...\r\n".
// A trailers-only answer (grpc-status in the HTTP headers) and non-200 HTTP
// answers are mapped to a status too. Messages are protobufjs types.

export const StatusCode = Object.freeze({
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5,
  ALREADY_EXISTS: 6, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10,
  OUT_OF_RANGE: 11, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16,
});

export class GrpcError extends Error {
  constructor(code, message, trailers = {}) {
    super(`gRPC status ${code}: ${message}`);
    this.code = code;
    this.grpcMessage = message;
    this.trailers = trailers;
  }
}

export function encodeFrame(flags, payload) {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, payload.length, false);
  out.set(payload, 5);
  return out;
}

function bytesToBase64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function base64ToBytes(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function concat(a, b) {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

// Incremental -text decoder: whole 4-character groups are decoded; a padded
// group ends a segment (padding may sit in the middle of the stream).
export class Base64StreamDecoder {
  constructor() { this.pending = ''; }
  push(text) {
    this.pending += text.replace(/\s+/g, '');
    const usable = this.pending.length - (this.pending.length % 4);
    const chunk = this.pending.slice(0, usable);
    this.pending = this.pending.slice(usable);
    let out = new Uint8Array(0);
    let start = 0;
    for (let i = 0; i < chunk.length; i += 4) {
      if (chunk[i + 3] === '=' || i + 4 === chunk.length) {
        out = concat(out, base64ToBytes(chunk.slice(start, i + 4)));
        start = i + 4;
      }
    }
    return out;
  }
  finish() {
    if (this.pending.length !== 0) throw new Error(`grpc-web-text: ${this.pending.length} dangling base64 characters`);
  }
}

// Incremental frame parser: push bytes, get complete frames.
export class FrameParser {
  constructor() { this.buf = new Uint8Array(0); }
  push(bytes) {
    this.buf = concat(this.buf, bytes);
    const frames = [];
    while (this.buf.length >= 5) {
      const len = new DataView(this.buf.buffer, this.buf.byteOffset, 5).getUint32(1, false);
      if (this.buf.length < 5 + len) break;
      frames.push({ flags: this.buf[0], payload: this.buf.slice(5, 5 + len) });
      this.buf = this.buf.slice(5 + len);
    }
    return frames;
  }
  finish() {
    if (this.buf.length !== 0) throw new Error(`gRPC-web body ends inside a frame (${this.buf.length} bytes left)`);
  }
}

export function parseTrailers(payload) {
  const text = new TextDecoder().decode(payload);
  const out = {};
  for (const line of text.split('\r\n')) {
    if (!line) continue;
    const colon = line.indexOf(':');
    if (colon < 0) throw new Error(`gRPC-web trailer line without ':': ${line}`);
    out[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return out;
}

function decodeGrpcMessage(m) {
  if (!m) return '';
  try { return decodeURIComponent(m); } catch { return m; }
}

function httpStatusToCode(status) {
  switch (status) {
    case 400: return StatusCode.INTERNAL;
    case 401: return StatusCode.UNAUTHENTICATED;
    case 403: return StatusCode.PERMISSION_DENIED;
    case 404: return StatusCode.UNIMPLEMENTED;
    case 429: case 502: case 503: case 504: return StatusCode.UNAVAILABLE;
    default: return StatusCode.UNKNOWN;
  }
}

export class GrpcWebClient {
  // baseUrl: "http://host:port" ("" = the page's own origin); mode: "binary" or "text".
  constructor(baseUrl = '', { mode = 'binary', headers = {} } = {}) {
    this.baseUrl = baseUrl.replace(/\/$/, '');
    this.mode = mode;
    this.headers = headers;
  }

  // Calls `method` ("/pkg.Service/Method"); onMessage(decoded) per response
  // message. Resolves with the trailers ({"grpc-status": "0", ...}); rejects
  // with GrpcError for a non-OK status. `signal` aborts (cancels) the call.
  async call(method, requestType, responseType, request, onMessage, { signal, headers = {}, timeoutMs } = {}) {
    const text = this.mode === 'text';
    const reqBytes = encodeFrame(0, requestType.encode(requestType.fromObject(request)).finish());
    const h = {
      'content-type': text ? 'application/grpc-web-text' : 'application/grpc-web+proto',
      accept: text ? 'application/grpc-web-text' : 'application/grpc-web+proto',
      'x-grpc-web': '1',
      ...this.headers,
      ...headers,
    };
    if (timeoutMs) h['grpc-timeout'] = `${Math.ceil(timeoutMs)}m`;
    const resp = await fetch(this.baseUrl + method, {
      method: 'POST', headers: h, body: text ? bytesToBase64(reqBytes) : reqBytes, signal,
    });
    const headerStatus = resp.headers.get('grpc-status');
    if (resp.status !== 200) {
      const code = headerStatus !== null ? Number(headerStatus) : httpStatusToCode(resp.status);
      const msg = resp.headers.get('grpc-message');
      throw new GrpcError(code, msg !== null ? decodeGrpcMessage(msg) : `HTTP ${resp.status}: ${await resp.text()}`);
    }
    const frames = new FrameParser();
    const b64 = text ? new Base64StreamDecoder() : null;
    let trailers = null;
    const handle = (bytes) => {
      for (const f of frames.push(bytes)) {
        if (trailers) throw new Error('gRPC-web: a frame after the trailer');
        if (f.flags & 0x80) trailers = parseTrailers(f.payload);
        else onMessage(responseType.toObject(responseType.decode(f.payload), { longs: Number, enums: String, defaults: true }));
      }
    };
    const reader = resp.body.getReader();
    const utf8 = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      handle(text ? b64.push(utf8.decode(value, { stream: true })) : value);
    }
    if (text) b64.finish();
    frames.finish();
    if (!trailers && headerStatus !== null) trailers = { 'grpc-status': headerStatus, 'grpc-message': resp.headers.get('grpc-message') || '' };
    if (!trailers) throw new GrpcError(StatusCode.INTERNAL, 'gRPC-web response ended without a trailer frame');
    const code = Number(trailers['grpc-status']);
    if (code !== StatusCode.OK) throw new GrpcError(code, decodeGrpcMessage(trailers['grpc-message']), trailers);
    return trailers;
  }

  async unary(method, requestType, responseType, request, options = {}) {
    let result = null;
    await this.call(method, requestType, responseType, request, (m) => { result = m; }, options);
    if (result === null) throw new GrpcError(StatusCode.INTERNAL, `${method}: no response message`);
    return result;
  }
}
