// The console page end to end in headless Chromium: the page loads its config and live counts,
// "Connect" opens a test WebSocket to the gateway, the push form sends a message through the
// HTTP API, and the message shows up on the page.
//
// Run by gateway/tests/observability.rs as
//   node console.test.mjs <console-url> <screenshot-dir> [api-key] [consumer]
// With a consumer name, its row must show it connected, having carried out 3 messages.
// Uses playwright-core with Debian's Chromium (/usr/bin/chromium); never downloads a browser.

import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [url, shots = tmpdir(), apiKey = "", consumer = ""] = process.argv.slice(2);
if (!url) {
  console.error("usage: node console.test.mjs <console-url> <screenshot-dir> [api-key] [consumer]");
  process.exit(2);
}
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const WAIT = 10_000;

mkdirSync(shots, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "wsgate-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 1100, height: 900 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const page = context.pages()[0] ?? (await context.newPage());
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(String(e)));
page.on("console", (m) => m.type() === "error" && console.error("page console:", m.text()));

async function check(what, fn) {
  try {
    await fn();
    console.log("ok -", what);
  } catch (e) {
    throw new Error(`${what}: ${e.message.split("\n")[0]}`);
  }
}

let failed = null;
try {
  await check("the page loads with its config", async () => {
    await page.goto(url, { waitUntil: "load", timeout: WAIT });
    await page.waitForFunction(() => document.getElementById("ws-url").value.startsWith("ws"), null, { timeout: WAIT });
  });
  await check("live counts arrive from /metrics", async () => {
    await page.waitForFunction(
      () => /^\d/.test(document.querySelector('[data-metric="wsgate_connections"] b').textContent),
      null,
      { timeout: WAIT },
    );
    await page.waitForFunction(() => document.getElementById("ready").textContent === "ready", null, { timeout: WAIT });
  });
  if (apiKey) await page.fill("#api-key", apiKey);
  await check("Connect opens a test WebSocket and shows its connection id", async () => {
    await page.click("#connect");
    await page.waitForFunction(() => document.getElementById("ws-status").textContent === "open", null, { timeout: WAIT });
    await page.waitForFunction(
      () => /^[\w.-]+$/.test(document.getElementById("conn-id").textContent),
      null,
      { timeout: WAIT },
    );
  });
  await check("the counts show the test connection", async () => {
    await page.waitForFunction(
      () => Number(document.querySelector('[data-metric="wsgate_connections"] b').textContent) >= 1,
      null,
      { timeout: WAIT },
    );
  });
  const text = `hello from chromium ${Date.now()}`;
  await check("a message pushed through the API arrives on the page", async () => {
    await page.fill("#push-text", text);
    await page.selectOption("#push-target", "self");
    await page.click("#push");
    await page.waitForFunction(
      (t) => [...document.querySelectorAll("#messages li")].some((li) => li.textContent.endsWith(t)),
      text,
      { timeout: WAIT },
    );
    const result = await page.textContent("#push-result");
    if (!result.includes("delivered to 1")) throw new Error(`push result says ${JSON.stringify(result)}`);
  });
  if (consumer) {
    await check(`the consumers table shows ${consumer} connected, 3 carried out`, async () => {
      await page.waitForFunction(
        (name) => {
          const row = document.querySelector(`#consumers tr[data-consumer="${name}"]`);
          if (!row || document.getElementById("consumers-panel").hidden) return false;
          const cells = [...row.children].map((td) => td.textContent);
          return cells[2] === "connected" && cells[3] === "3" && cells[4] === "0";
        },
        consumer,
        { timeout: WAIT },
      );
    });
  }
  await page.screenshot({ path: join(shots, "console.png"), fullPage: true });
  console.log("screenshot:", join(shots, "console.png"));
  if (pageErrors.length) throw new Error(`the page threw: ${pageErrors.join("; ")}`);
} catch (e) {
  failed = e;
  await page.screenshot({ path: join(shots, "console-failure.png"), fullPage: true }).catch(() => {});
  console.error("FAILED -", e.message);
  console.error("screenshot:", join(shots, "console-failure.png"));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
