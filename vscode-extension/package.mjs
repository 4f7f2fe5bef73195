// `npm run package [-- OUT.vsix]`: the production bundle, then ../dist/ghostcomplete-<version>.vsix
// (or OUT.vsix).
// Offline: --no-dependencies (the bundle holds them) and --allow-missing-repository (else vsce
// waits at a prompt); stdin is closed so that any other prompt fails instead of waiting.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const { version } = JSON.parse(readFileSync(join(here, "package.json"), "utf8"));
const dist = join(here, "..", "dist");
const out = process.argv[2] ? resolve(process.argv[2]) : join(dist, `ghostcomplete-${version}.vsix`);
mkdirSync(dirname(out), { recursive: true });
const run = (command, args) => execFileSync(command, args, { cwd: here, stdio: ["ignore", "inherit", "inherit"] });
run(process.execPath, [join(here, "esbuild.mjs"), "--production"]);
run(join(here, "node_modules", ".bin", "vsce"), [
  "package", "--no-dependencies", "--allow-missing-repository", "--out", out,
]);
