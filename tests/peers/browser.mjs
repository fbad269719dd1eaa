// Headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core, for the
// browser tests. The Rust test sends one JSON command per line on stdin and reads one
// JSON answer per line on stdout: {"ok":true,"value":…} or {"ok":false,"error":"…"}.
//
// Commands (every wait is bounded by its timeoutMs, default 20000):
//   {"cmd":"open","page":"a","url":"…","noEventSource":false}  new tab, load url
//   {"cmd":"goto","page":"a","url":"…"}                          navigate an open tab
//   {"cmd":"eval","page":"a","expr":"…"}                         value of a JS expression
//   {"cmd":"wait","page":"a","expr":"…","timeoutMs":20000}       until expr is truthy
//   {"cmd":"click","page":"a","selector":"…"}
//   {"cmd":"requests","page":"a"}                                URLs the tab requested
//   {"cmd":"console","page":"a"}                                 console messages, errors
//   {"cmd":"quit"}
//
// Chromium's --virtual-time-budget never finishes on a page holding an EventSource
// open, so everything here waits in real time.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.FJORD_CHROMIUM || '/usr/bin/chromium';
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'fjord-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  // The HTTPS tests serve a self-signed certificate for localhost.
  ignoreHTTPSErrors: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const pages = new Map();

function reply(message) {
  process.stdout.write(JSON.stringify(message) + '\n');
}

function tab(name) {
  const entry = pages.get(name);
  if (!entry) {
    throw new Error(`no page named ${name}`);
  }
  return entry;
}

async function run(command) {
  const timeout = command.timeoutMs || 20000;
  switch (command.cmd) {
    case 'open': {
      const page = await context.newPage();
      const entry = { page, requests: [], console: [] };
      page.on('request', (request) => entry.requests.push(request.url()));
      page.on('console', (message) => entry.console.push(`${message.type()}: ${message.text()}`));
      page.on('pageerror', (error) => entry.console.push(`pageerror: ${error.message}`));
      if (command.noEventSource) {
        // A browser without EventSource, as far as the page's scripts can tell.
        await page.addInitScript(() => {
          window.EventSource = undefined;
        });
      }
      pages.set(command.page, entry);
      const response = await page.goto(command.url, { timeout });
      return response ? response.status() : null;
    }
    case 'goto': {
      const response = await tab(command.page).page.goto(command.url, { timeout });
      return response ? response.status() : null;
    }
    case 'eval':
      return tab(command.page).page.evaluate(command.expr);
    case 'wait': {
      const { page } = tab(command.page);
      await page.waitForFunction(command.expr, null, { timeout, polling: 100 });
      return page.evaluate(command.expr);
    }
    case 'click':
      await tab(command.page).page.click(command.selector, { timeout });
      return null;
    case 'requests':
      return tab(command.page).requests;
    case 'console':
      return tab(command.page).console;
    default:
      throw new Error(`unknown command ${command.cmd}`);
  }
}

async function quit(code) {
  await context.close().catch(() => {});
  fs.rmSync(profile, { recursive: true, force: true });
  process.exit(code);
}

const input = readline.createInterface({ input: process.stdin });
reply({ ok: true, value: 'ready' });
for await (const line of input) {
  if (!line.trim()) {
    continue;
  }
  let command;
  try {
    command = JSON.parse(line);
  } catch (error) {
    reply({ ok: false, error: `bad command: ${error.message}` });
    continue;
  }
  if (command.cmd === 'quit') {
    reply({ ok: true, value: null });
    await quit(0);
  }
  try {
    reply({ ok: true, value: (await run(command)) ?? null });
  } catch (error) {
    reply({ ok: false, error: String(error && error.message ? error.message : error) });
  }
}
await quit(0);
