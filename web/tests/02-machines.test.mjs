// Machines page: discovery queries, the exchange's syntax errors, the matching machines.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  DESKTOP, PHONE, TEST_TIMEOUT, api, apiOk, assertOnlySectionVisible, launchBrowser, openPage,
  pageUrl, rowAttributes, screenshot, waitLive, waitUntil,
} from './helpers.mjs';

const BAD_QUERY = 'gpu.count >= && x';
const EU_QUERY = 'region == "eu"';

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

function offersPath(query, sort) {
  return `/v1/offers?q=${encodeURIComponent(query)}&sort=${encodeURIComponent(sort)}`;
}

async function submitQuery(page, query) {
  await page.locator('#query-input').fill(query);
  await page.locator('#query-submit').click();
}

// Waits until #offers-table lists exactly the machines the API answers for `query`.
async function waitOffersMatch(page, query, sort) {
  let last;
  const answer = await waitUntil(async () => {
    const offers = await apiOk(offersPath(query, sort));
    const expected = offers.items.map((m) => String(m.id)).sort();
    const shown = await rowAttributes(page, '#offers-table tbody tr[data-machine]', 'data-machine');
    last = { expected, shown };
    return JSON.stringify(expected) === JSON.stringify(shown) ? offers : null;
  }, () => `#offers-table to list the API's machines for ${JSON.stringify(query)}` +
     ` (last: ${JSON.stringify(last)})`);
  return answer;
}

async function checkError(page, query, sort) {
  const expected = await api(offersPath(query, sort));
  assert.equal(expected.status, 400, JSON.stringify(expected.body));
  assert.equal(expected.body.error.code, 'invalid_query');
  const column = expected.body.error.column;
  assert.ok(Number.isInteger(column) && column >= 1, JSON.stringify(expected.body));

  const error = page.locator('#query-error');
  await error.waitFor({ state: 'visible' });
  assert.equal(await error.getAttribute('data-code'), 'invalid_query');
  assert.equal(await error.getAttribute('data-column'), String(column));
  // The pre shows the query with a caret under the column.
  const lines = (await error.locator('pre').textContent()).split('\n');
  const at = lines.findIndex((line) => line.includes(query));
  assert.ok(at >= 0 && at + 1 < lines.length, `the error's pre lacks the query: ${lines}`);
  assert.equal(lines[at + 1].indexOf('^'), lines[at].indexOf(query) + column - 1,
    `the caret should be under column ${column}:\n${lines.join('\n')}`);
  return column;
}

test('machines: a query error, then the machines in the eu', { timeout: TEST_TIMEOUT }, async () => {
  const session = await openPage(browser, { viewport: DESKTOP });
  // Chromium logs every refused fetch; the bad query's 400 is expected.
  session.allowConsole({ text: /status of 400/, url: /\/v1\/offers/ });
  const { page } = session;
  try {
    // Reach the page through the nav, as a user would.
    await page.goto(pageUrl('#/markets'));
    await waitLive(page);
    await page.locator('nav a[href="#/machines"]').click();
    await page.locator('#page-machines').waitFor({ state: 'visible' });
    await assertOnlySectionVisible(page, 'page-machines');
    assert.equal(await page.locator('#sort-input').inputValue(), 'price');
    const sort = 'price';

    // The initial query (whatever the input holds) already lists its machines.
    const initial = await page.locator('#query-input').inputValue();
    await waitOffersMatch(page, initial, sort);
    assert.equal(await page.locator('#query-error').isVisible(), false);

    await submitQuery(page, BAD_QUERY);
    await checkError(page, BAD_QUERY, sort);
    await screenshot(page, 'machines-error-desktop.png');

    await submitQuery(page, EU_QUERY);
    await page.locator('#query-error').waitFor({ state: 'hidden' });
    const offers = await waitOffersMatch(page, EU_QUERY, sort);
    assert.ok(offers.items.length > 0, 'the demo has a machine in the eu (alice-home-pc)');
    for (const machine of offers.items) {
      const row = page.locator(`#offers-table tbody tr[data-machine="${machine.id}"]`);
      const text = await row.textContent();
      assert.ok(text.includes(machine.name), `row of machine ${machine.id} lacks its name: ${text}`);
      assert.ok(text.includes(machine.attributes.region), `row lacks the region: ${text}`);
      if (typeof machine.ask === 'string') {
        assert.ok(text.includes(machine.ask), `row lacks the ask ${machine.ask}: ${text}`);
      }
    }
    const total = (await page.locator('#offers-total').textContent()).trim();
    assert.match(total, new RegExp(`(^|\\D)${offers.total_matching}(\\D|$)`),
      `#offers-total should say ${offers.total_matching}: "${total}"`);
    await screenshot(page, 'machines-desktop.png');
    session.check();
  } finally {
    await session.close();
  }

  const phone = await openPage(browser, { viewport: PHONE, phone: true });
  phone.allowConsole({ text: /status of 400/, url: /\/v1\/offers/ });
  try {
    await phone.page.goto(pageUrl('#/machines'));
    await phone.page.locator('#page-machines').waitFor({ state: 'visible' });
    await submitQuery(phone.page, BAD_QUERY);
    await checkError(phone.page, BAD_QUERY, 'price');
    await screenshot(phone.page, 'machines-error-phone.png');
    await submitQuery(phone.page, EU_QUERY);
    await phone.page.locator('#query-error').waitFor({ state: 'hidden' });
    await waitOffersMatch(phone.page, EU_QUERY, 'price');
    await screenshot(phone.page, 'machines-phone.png');
    phone.check();
  } finally {
    await phone.close();
  }
});
