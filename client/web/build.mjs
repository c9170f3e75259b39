// `npm run bundle`: the reference page into dist/ — index.html, style.css and app.js (the page
// with the client, bundled by esbuild). The test harness serves dist/; the production server
// serves no page.
import { build } from "esbuild";
import { copyFile, mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const out = join(root, "dist");
await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({
  entryPoints: [join(root, "src/page/main.ts")],
  outfile: join(out, "app.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  sourcemap: true,
  minify: process.env.MINIFY === "1",
  logLevel: "warning",
});
for (const file of ["index.html", "style.css"]) {
  await copyFile(join(root, "page", file), join(out, file));
}
console.log(`bundled the page into ${out}`);
