// Shared helpers of the dashboard's browser tests (node --test + playwright-core).
//
// The tests run against a live `ocx demo --keep` (tests/integration/web_test.sh starts it and
// passes OCX_DEMO_JSON, the demo's description: url, dashboard_url, consumer_token, ...).
// They select elements only by the ids and attributes of web/CONTRACT.md, and they compare
// what the page shows with what the HTTP API answers at the same time (nothing hard-coded).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const TIMEOUT = 30_000;  // For one wait in the page (CI shares 2 cores).
export const TEST_TIMEOUT = 180_000;  // For one whole test.
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

let demoCache = null;

/** The running demo: {url, dashboard_url, consumer_token, consumer_account, operator_token}. */
export function demo() {
  if (demoCache) return demoCache;
  const path = process.env.OCX_DEMO_JSON;
  assert.ok(path, 'OCX_DEMO_JSON is not set (run tests/integration/web_test.sh)');
  const parsed = JSON.parse(readFileSync(path, 'utf8'));
  for (const field of ['url', 'dashboard_url', 'consumer_token']) {
    assert.ok(parsed[field], `${path} lacks "${field}"`);
  }
  parsed.url = String(parsed.url).replace(/\/+$/, '');
  demoCache = parsed;
  return parsed;
}

/** The dashboard's address for a hash route (`#/markets`, `#/machines`, `#/me`). */
export function pageUrl(route) {
  return new URL(route, demo().dashboard_url).toString();
}

/** One HTTP call to the exchange; returns {status, body}. */
export async function api(path, { method = 'GET', token, body, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  const response = await fetch(demo().url + path, {
    method,
    headers: h,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  return { status: response.status, body: parsed };
}

/** Like api(), but asserts the status. */
export async function apiOk(path, options = {}, expected = [200, 201]) {
  const answer = await api(path, options);
  assert.ok(expected.includes(answer.status),
    `${options.method ?? 'GET'} ${path} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  return answer.body;
}

/** Every item of a paginated list call. */
export async function apiAll(path, options = {}) {
  const items = [];
  let after = null;
  for (;;) {
    const sep = path.includes('?') ? '&' : '?';
    const page = await apiOk(`${path}${sep}limit=1000${after === null ? '' : `&after=${after}`}`,
      options);
    items.push(...page.items);
    if (page.next_after === null || page.next_after === undefined) return items;
    after = page.next_after;
  }
}

export function idempotencyKey(prefix) {
  return `${prefix}-${randomBytes(8).toString('hex')}`;
}

// Decimal strings <-> integer micro-credits (the API's prices have at most 6 fractional digits).
export function toMicros(decimal) {
  const [whole, fraction = ''] = String(decimal).split('.');
  assert.ok(/^\d+$/.test(whole) && /^\d{0,6}$/.test(fraction), `not a price: ${decimal}`);
  return Number(whole) * 1_000_000 + Number(fraction.padEnd(6, '0'));
}

export function fromMicros(micros) {
  const whole = Math.floor(micros / 1_000_000);
  const fraction = String(micros % 1_000_000).padStart(6, '0').replace(/0+$/, '');
  return fraction ? `${whole}.${fraction}` : String(whole);
}

/**
 * Polls `probe` until it returns a truthy value (returned), or fails with `what` (a string, or
 * a function giving it, called at the failure: it can show the last value seen).
 */
export async function waitUntil(probe, what, timeout = TIMEOUT, interval = 200) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      const described = typeof what === 'function' ? what() : what;
      assert.fail(`timed out after ${timeout} ms waiting for ${described}` +
        (last instanceof Error ? ` (last error: ${last.message})` : ''));
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** True for the URLs the page may load: loopback, or data:/blob:/about: (no network). */
export function isLocalUrl(url) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  if (['data:', 'blob:', 'about:'].includes(parsed.protocol)) return true;
  return LOOPBACK.has(parsed.hostname);
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-dev-shm-usage', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-default-apps',
      '--disable-sync', '--metrics-recording-only', '--no-default-browser-check',
      '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
    ],
  });
}

/**
 * A fresh context and page. Records, as `problems`, every console error, uncaught page error
 * and request (HTTP or WebSocket) to a host that is not loopback; call `session.check()` at
 * the end of a test. `allowConsole(pattern)` lets an expected console error through: an
 * object {text: RegExp, url: RegExp} matched against the message and its source URL
 * (Chromium logs "Failed to load resource: ... 400" for every refused fetch, e.g. the
 * deliberately bad query). A missing favicon is always allowed.
 */
export async function openPage(browser, { viewport = DESKTOP, phone = false } = {}) {
  const context = await browser.newContext({
    viewport,
    isMobile: phone,
    hasTouch: phone,
    deviceScaleFactor: 1,
    serviceWorkers: 'block',
  });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const problems = [];
  const allowed = [{ text: /^Failed to load resource/, url: /\/favicon\.ico$/ }];
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const text = message.text();
    const url = message.location()?.url ?? '';
    if (allowed.some((a) => a.text.test(text) && (!a.url || a.url.test(url)))) return;
    problems.push(`console error: ${text}${url ? ` (at ${url})` : ''}`);
  });
  page.on('pageerror', (error) => problems.push(`uncaught error in the page: ${error.message}`));
  context.on('request', (request) => {
    if (!isLocalUrl(request.url())) problems.push(`request off loopback: ${request.url()}`);
  });
  page.on('websocket', (socket) => {
    if (!isLocalUrl(socket.url().replace(/^ws/, 'http'))) {
      problems.push(`WebSocket off loopback: ${socket.url()}`);
    }
  });
  return {
    context,
    page,
    problems,
    allowConsole(pattern) {
      allowed.push(pattern);
    },
    check() {
      assert.deepEqual(problems, [], 'the page logged errors or left loopback');
    },
    async close() {
      await context.close();
    },
  };
}

export function screenshotDir() {
  const dir = process.env.OCX_SCREENSHOT_DIR || join(process.cwd(), 'build', 'web-screenshots');
  mkdirSync(dir, { recursive: true });
  return dir;
}

export async function screenshot(page, name) {
  const path = join(screenshotDir(), name);
  // A full-page capture of a scrolled page would paint the sticky header mid-page.
  // (The page may still be smooth-scrolling, e.g. to an opened job: wait until it rests at 0.)
  await page.evaluate(() => new Promise((resolve) => {
    const deadline = performance.now() + 3000;
    let still = 0;
    const step = () => {
      if (window.scrollY !== 0 || document.scrollingElement.scrollTop !== 0) {
        still = 0;
        window.scrollTo({ top: 0, left: 0, behavior: 'instant' });
      } else {
        still += 1;
      }
      if (still >= 3 || performance.now() > deadline) resolve();
      else requestAnimationFrame(step);
    };
    step();
  }));
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Waits until the dashboard's WebSocket is open (#live-status[data-state=live]). */
export async function waitLive(page) {
  await page.locator('#live-status[data-state="live"]').waitFor({ state: 'attached' });
}

/** Only `id`'s page section is visible (CONTRACT: one section per page). */
export async function assertOnlySectionVisible(page, id) {
  for (const section of ['page-markets', 'page-machines', 'page-me']) {
    const visible = await page.locator(`#${section}`).isVisible();
    assert.equal(visible, section === id, `#${section} should ${section === id ? '' : 'not '}be visible`);
  }
}

/** Signs in on the Me page with `token` (the page must be on #/me, signed out). */
export async function signIn(page, token) {
  await page.locator('#token-input').fill(token);
  await page.locator('#signin-submit').click();
}

/** The `attr` values of the rows matching `selector`, sorted. */
export async function rowAttributes(page, selector, attr) {
  const values = await page.locator(selector).evaluateAll(
    (rows, name) => rows.map((row) => row.getAttribute(name)), attr);
  return values.sort();
}

export function sortedIds(items) {
  return items.map((item) => String(item.id)).sort();
}
