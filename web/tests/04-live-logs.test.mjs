// A job's output streams into the Me page's job detail while it runs.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  DESKTOP, TEST_TIMEOUT, api, apiOk, demo, idempotencyKey, launchBrowser, openPage, pageUrl,
  screenshot, signIn, toMicros, waitLive, waitUntil,
} from './helpers.mjs';

const MAX_PRICE = '0.07';
const TICKS = 8;

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

test('me: a running job\'s logs stream live', { timeout: TEST_TIMEOUT }, async () => {
  const token = demo().consumer_token;
  const session = await openPage(browser, { viewport: DESKTOP });
  const { page } = session;
  let jobId = null;
  try {
    await page.goto(pageUrl('#/me'));
    await waitLive(page);
    await signIn(page, token);
    await page.locator('#account-name').waitFor({ state: 'visible' });
    // The page has loaded the jobs it had: the new one must come live, without a reload.
    await page.locator('#jobs-table tbody tr[data-job]').first().waitFor();
    await page.evaluate(() => { window.__ocxNoReload = 'still here'; });

    // A machine must be free at the job's price (an earlier test's lease has been released).
    await waitUntil(async () => {
      const book = await apiOk('/v1/markets/cpu/book');
      return book.asks.some(([price]) => toMicros(price) <= toMicros(MAX_PRICE));
    }, `an ask at or below ${MAX_PRICE} in the cpu market`);

    const submitted = await apiOk('/v1/jobs', {
      method: 'POST', token, headers: { 'Idempotency-Key': idempotencyKey('web-test-job') },
      body: {
        market: 'cpu', tasks: 1, max_price: MAX_PRICE,
        task: {
          command: ['sh', '-c',
            `for i in ${Array.from({ length: TICKS }, (_, i) => i + 1).join(' ')}; ` +
            'do echo tick-$i; sleep 1; done'],
          timeout_s: 120,
        },
      },
    });
    jobId = submitted.job.id;

    const row = page.locator(`#jobs-table tbody tr[data-job="${jobId}"]`);
    await row.waitFor();
    await row.click();
    const detail = page.locator(`#job-detail[data-job="${jobId}"]`);
    await detail.waitFor({ state: 'visible' });

    // Streamed: some tick is shown while the job still runs and before its last line.
    const seen = await page.waitForFunction((last) => {
      const logs = document.querySelector('pre#job-logs')?.textContent ?? '';
      const state = document.querySelector('#job-state')?.textContent.trim() ?? '';
      if (!/tick-\d/.test(logs)) return null;
      return { logs, state, finished: logs.includes(last) };
    }, `tick-${TICKS}`, { timeout: 30_000, polling: 100 }).then((handle) => handle.jsonValue());
    assert.ok(!/\bdone\b/i.test(seen.state) && !seen.finished,
      `the logs only came once the job was over (state "${seen.state}"):\n${seen.logs}`);
    assert.match(seen.logs, /\[task 0\] tick-\d/, 'log lines are prefixed "[task N] "');
    await page.locator('#job-tasks tbody tr').first().waitFor();
    await screenshot(page, 'job-running-desktop.png');

    // Then the job ends: every line is there, the state says done.
    await waitUntil(async () => /\bdone\b/i.test(await page.locator('#job-state').textContent()),
      '#job-state to reach done', 60_000);
    await waitUntil(async () => (await page.locator('pre#job-logs').textContent())
      .includes(`tick-${TICKS}`), `pre#job-logs to show tick-${TICKS}`);
    const logs = await page.locator('pre#job-logs').textContent();
    for (let i = 1; i <= TICKS; ++i) {
      assert.ok(logs.includes(`tick-${i}`) || i < 3, `the logs lack tick-${i}:\n${logs}`);
    }
    const job = await apiOk(`/v1/jobs/${jobId}`, { token });
    assert.equal(job.job.state, 'done', JSON.stringify(job));
    await waitUntil(async () => /\bdone\b/i.test(await row.locator('td.job-state').textContent()),
      'the job\'s row to say done');
    // Its lease ends too (the agent ends it once the task reported): the leases table follows.
    const lease = job.job.tasks[0].lease;
    await waitUntil(async () => (await apiOk(`/v1/leases/${lease}`, { token })).lease.status ===
      'ended', `lease ${lease} to end`);
    const leaseRow = page.locator(`#leases-table tbody tr[data-lease="${lease}"]`);
    await waitUntil(async () => /\bended\b/.test(await leaseRow.innerText()),
      `the row of lease ${lease} to say ended`);
    assert.equal(await page.evaluate(() => window.__ocxNoReload), 'still here',
      'the page reloaded');
    await screenshot(page, 'job-detail-desktop.png');
    session.check();
    jobId = null;
  } finally {
    if (jobId !== null) await api(`/v1/jobs/${jobId}`, { method: 'DELETE', token });
    await session.close();
  }
});
