// Me page: signing in with a token, the account's jobs, leases and statement.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  DESKTOP, PHONE, TEST_TIMEOUT, api, apiAll, assertOnlySectionVisible, demo, launchBrowser,
  openPage, pageUrl, rowAttributes, screenshot, signIn, sortedIds, waitLive, waitUntil,
} from './helpers.mjs';

const WRONG_TOKEN = `ocx_${'0'.repeat(64)}`;

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

// The consumer's name as the exchange has it (GET /v1/me), which the demo made "dana".
async function accountName() {
  const me = await api('/v1/me', { token: demo().consumer_token });
  assert.equal(me.status, 200, `GET /v1/me: ${JSON.stringify(me.body)}`);
  assert.equal(me.body.account.name, 'dana');
  return me.body.account.name;
}

// Waits until the rows of `selector` carry (in `attr`) exactly the ids `list()` answers.
async function waitRowsMatch(page, selector, attr, list, what) {
  let last;
  await waitUntil(async () => {
    const expected = sortedIds(await list());
    const shown = await rowAttributes(page, selector, attr);
    last = { expected, shown };
    return JSON.stringify(expected) === JSON.stringify(shown);
  }, () => `${what} (last: ${JSON.stringify(last)})`);
}

test('me: a wrong token is refused, the consumer signs in', { timeout: TEST_TIMEOUT }, async () => {
  const token = demo().consumer_token;
  const name = await accountName();
  const session = await openPage(browser, { viewport: DESKTOP });
  // The refused token's 401 is expected (Chromium logs every refused fetch).
  session.allowConsole({ text: /status of 401/, url: /\/v1\// });
  const { page } = session;
  try {
    await page.goto(pageUrl('#/me'));
    await waitLive(page);
    await assertOnlySectionVisible(page, 'page-me');
    await page.locator('form#signin-form').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#token-input').getAttribute('type'), 'password');

    await signIn(page, WRONG_TOKEN);
    await page.locator('#signin-error').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#account-name').isVisible(), false);
    await screenshot(page, 'me-signin-error-desktop.png');

    await signIn(page, token);
    const shownName = page.locator('#account-name');
    await shownName.waitFor({ state: 'visible' });
    await waitUntil(async () => (await shownName.textContent()).trim() === name,
      `#account-name to show "${name}"`);
    assert.equal(await page.locator('#signin-error').isVisible(), false);
    await page.locator('#balances').waitFor({ state: 'visible' });

    // The jobs are the demo's (whatever GET /v1/jobs lists), each with its state.
    const jobs = await apiAll('/v1/jobs', { token });
    assert.ok(jobs.length >= 3, `the demo ran 3 jobs: ${JSON.stringify(jobs)}`);
    await waitRowsMatch(page, '#jobs-table tbody tr[data-job]', 'data-job',
      () => apiAll('/v1/jobs', { token }), '#jobs-table to list GET /v1/jobs');
    for (const job of await apiAll('/v1/jobs', { token })) {
      const state = await page.locator(`#jobs-table tbody tr[data-job="${job.id}"] td.job-state`)
        .textContent();
      assert.ok(state.includes(job.state), `job ${job.id} is ${job.state}, the row says "${state}"`);
    }
    await waitRowsMatch(page, '#leases-table tbody tr[data-lease]', 'data-lease',
      () => apiAll('/v1/leases', { token }), '#leases-table to list GET /v1/leases');
    // Every order row is one of the account's orders.
    const orders = new Set(sortedIds(await apiAll('/v1/orders', { token })));
    for (const id of await rowAttributes(page, '#orders-table tbody tr[data-order]', 'data-order')) {
      assert.ok(orders.has(id), `#orders-table shows order ${id}, not one of the account's`);
    }
    await page.locator('#statement-table tbody tr').first().waitFor();
    assert.ok(await page.locator('#statement-table tbody tr').count() > 0);
    await screenshot(page, 'me-desktop.png');

    // The token is kept in sessionStorage: a reload stays signed in.
    await page.reload();
    await page.locator('#account-name').waitFor({ state: 'visible' });
    assert.equal((await page.locator('#account-name').textContent()).trim(), name);

    // Signing out forgets it.
    await page.locator('button#signout').click();
    await page.locator('form#signin-form').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#account-name').isVisible(), false);
    session.check();
  } finally {
    await session.close();
  }

  const phone = await openPage(browser, { viewport: PHONE, phone: true });
  try {
    await phone.page.goto(pageUrl('#/me'));
    await phone.page.locator('form#signin-form').waitFor({ state: 'visible' });
    await signIn(phone.page, token);
    await phone.page.locator('#account-name').waitFor({ state: 'visible' });
    await waitRowsMatch(phone.page, '#jobs-table tbody tr[data-job]', 'data-job',
      () => apiAll('/v1/jobs', { token }), 'the phone\'s #jobs-table');
    await phone.page.locator('#statement-table tbody tr').first().waitFor();
    await screenshot(phone.page, 'me-phone.png');
    phone.check();
  } finally {
    await phone.close();
  }
});
