// Builds the dashboard into OUTDIR (default dist/): app.js bundled by esbuild
// from src/main.js (with proto/squeeze/v1/service.proto inlined as text, so the
// browser parses the same API definition as the C++ build), plus index.html
// and style.css copied. The coordinator serves OUTDIR with --dashboard-dir.
//   node build.mjs [OUTDIR]
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(process.argv[2] || path.join(here, 'dist'));
fs.mkdirSync(out, { recursive: true });
await esbuild.build({
  entryPoints: [path.join(here, 'src/main.js')],
  bundle: true,
  format: 'esm',
  target: ['es2022'],
  minify: true,
  sourcemap: false,
  loader: { '.proto': 'text' },
  outfile: path.join(out, 'app.js'),
  logLevel: 'warning',
});
for (const f of ['index.html', 'style.css']) fs.copyFileSync(path.join(here, f), path.join(out, f));
console.log(`dashboard built in ${out}`);
