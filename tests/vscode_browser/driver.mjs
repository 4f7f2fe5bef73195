// The browser half of test_vscode_browser.py: opens code-server's page in Debian's chromium
// through playwright-core, then runs the snippets the Python test sends. One JSON object per
// line each way: {"id", "js"} in, {"id", "ok", "value" | "error"} out. A snippet is the body of
// an async function of (page, context); what it returns must be JSON.
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const [url] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  // As root in a container chromium refuses to start with its sandbox.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  headless: true,
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
// Below the Python side's own timeout, so that a stuck step fails with playwright's message.
page.setDefaultTimeout(15_000);
await page.goto(url);
const AsyncFunction = Object.getPrototypeOf(async () => undefined).constructor;
const reply = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);
reply({ id: 0, ok: true, value: "ready" });

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  const { id, js } = JSON.parse(line);
  try {
    const value = await new AsyncFunction("page", "context", js)(page, context);
    reply({ id, ok: true, value: value ?? null });
  } catch (error) {
    reply({ id, ok: false, error: String(error?.stack ?? error) });
  }
}
// stdin closed: the test is over.
await browser.close();
