// Builds the dashboard into dist/: index.html plus content-hashed assets/app-HASH.{js,css}.
//   node build.mjs          minified, with source maps
//   node build.mjs --dev    not minified
// dist/ is emptied first, so no stale asset survives a rebuild.
import { build } from 'esbuild';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist');
const dev = process.argv.includes('--dev');

await rm(dist, { recursive: true, force: true });
await mkdir(join(dist, 'assets'), { recursive: true });

const result = await build({
  absWorkingDir: root,
  entryPoints: { app: 'src/main.ts' },
  bundle: true,
  format: 'iife',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  minify: !dev,
  sourcemap: 'linked',
  outdir: join(dist, 'assets'),
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'linked',
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': dev ? '"development"' : '"production"' },
});

// The entry's outputs: one .js and (because main.ts imports the stylesheet) one .css.
let js = null;
let css = null;
for (const [path, output] of Object.entries(result.metafile.outputs)) {
  if (output.entryPoint === 'src/main.ts' && path.endsWith('.js')) js = basename(path);
  if (path.endsWith('.css') && !path.endsWith('.map')) css = basename(path);
}
if (!js || !css) throw new Error(`build.mjs: missing outputs (js=${js}, css=${css})`);

const template = await readFile(join(root, 'index.html'), 'utf8');
for (const marker of ['<!-- app.css -->', '<!-- app.js -->']) {
  if (!template.includes(marker)) throw new Error(`build.mjs: index.html lacks ${marker}`);
}
const html = template
  .replace('<!-- app.css -->', `<link rel="stylesheet" href="assets/${css}">`)
  .replace('<!-- app.js -->', `<script defer src="assets/${js}"></script>`);
await writeFile(join(dist, 'index.html'), html);
console.log(`dist/index.html, dist/assets/${js}, dist/assets/${css}`);
