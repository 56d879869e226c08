// Markets page: the book and trades of the demo, updated live over the WebSocket.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  DESKTOP, PHONE, TEST_TIMEOUT, TIMEOUT, api, apiAll, apiOk, assertOnlySectionVisible, demo,
  fromMicros, idempotencyKey, launchBrowser, openPage, pageUrl, screenshot, toMicros, waitLive,
  waitUntil,
} from './helpers.mjs';

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

// The market the dashboard shows first (CONTRACT: the first market by default) when it has
// asks; else the first market with asks, which the test then selects.
async function marketWithAsks() {
  const markets = (await apiOk('/v1/markets')).items;
  assert.ok(markets.length > 0, 'the exchange has no markets');
  for (const market of markets) {
    const book = await apiOk(`/v1/markets/${encodeURIComponent(market.name)}/book?depth=1000`);
    if (book.asks.length > 0) return { market, isDefault: market === markets[0] };
  }
  assert.fail('no market has asks: the demo\'s providers should have offered their machines');
}

async function apiBook(name) {
  return apiOk(`/v1/markets/${encodeURIComponent(name)}/book?depth=1000`);
}

// The page's levels of one side: [[price, qty text], ...] in table order.
async function pageLevels(page, table) {
  return page.locator(`${table} tbody tr[data-price]`).evaluateAll((rows) => rows.map(
    (row) => [row.getAttribute('data-price'), row.querySelector('td.qty')?.textContent.trim()]));
}

function sameLevels(pageSide, apiSide) {
  const canon = (levels) => levels.map(([p, q]) => `${p}x${String(q)}`).sort().join(' ');
  return canon(pageSide) === canon(apiSide);
}

// Waits until the page's asks and bids equal the exchange's book (read again on every try).
async function waitBookMatches(page, name, what) {
  let last;
  await waitUntil(async () => {
    const book = await apiBook(name);
    const asks = await pageLevels(page, '#book-asks');
    const bids = await pageLevels(page, '#book-bids');
    last = { api: { asks: book.asks, bids: book.bids }, page: { asks, bids } };
    return sameLevels(asks, book.asks) && sameLevels(bids, book.bids);
  }, () => `${what} (last seen: ${JSON.stringify(last)})`);
}

async function openMarkets(page, market, isDefault) {
  await page.goto(demo().dashboard_url);
  await waitLive(page);
  if (!isDefault) await page.locator('#market-select').selectOption(market.name);
  await page.locator('#book-asks tbody tr[data-price]').first().waitFor();
}

// The trade rows, newest first: each the texts of its cells.
async function trades(page) {
  return page.locator('#trades-table tbody tr').evaluateAll(
    (rows) => rows.map((row) => [...row.cells].map((cell) => cell.textContent.trim())));
}

test('markets: the book, live bids, a live trade', { timeout: TEST_TIMEOUT }, async () => {
  const { market, isDefault } = await marketWithAsks();
  const session = await openPage(browser, { viewport: DESKTOP });
  const { page } = session;
  const leases = [];
  try {
    await openMarkets(page, market, isDefault);
    await assertOnlySectionVisible(page, 'page-markets');
    assert.equal(await page.locator('#market-select').inputValue(), market.name);

    // The book as the exchange has it: every ask level, with its quantity.
    const book = await apiBook(market.name);
    assert.ok(book.asks.length > 0);
    await page.locator(`#book-asks tbody tr[data-price="${book.asks[0][0]}"]`).waitFor();
    await waitBookMatches(page, market.name, 'the page\'s book to equal GET .../book');
    await page.locator('#depth-chart').waitFor({ state: 'visible' });
    await page.locator('#price-chart').waitFor({ state: 'visible' });

    // The summary shows the best ask; the trades table starts with the newest trade.
    const summary = await page.locator('#market-summary').textContent();
    assert.ok(summary.includes(book.asks[0][0]),
      `#market-summary should show the best ask ${book.asks[0][0]}: "${summary.trim()}"`);
    const history = await apiAll(`/v1/markets/${encodeURIComponent(market.name)}/trades`);
    if (history.length > 0) {
      const newest = history.reduce((a, b) => (b.id > a.id ? b : a));
      await waitUntil(async () => (await trades(page)).length > 0, 'the trades table to fill');
      const rows = await trades(page);
      assert.ok(rows[0].includes(newest.price),
        `the first trade row should be the newest trade (${newest.price}): ${rows[0]}`);
    }

    // From here on, nothing may reload the page or re-fetch the book over HTTP: the updates
    // must come over the WebSocket.
    await page.evaluate(() => { window.__ocxNoReload = 'still here'; });
    const bookFetches = [];
    page.on('request', (request) => {
      if (/\/v1\/markets\/[^/]+\/book/.test(request.url())) bookFetches.push(request.url());
    });

    // A bid below the best ask rests in the book: its level appears, then goes on cancel.
    const token = demo().consumer_token;
    const tick = toMicros(market.tick);
    const bestAsk = toMicros(book.asks[0][0]);
    const taken = new Set(book.bids.map(([p]) => toMicros(p)));
    let price = Math.floor(bestAsk / 2 / tick) * tick;
    while (taken.has(price) && price > tick) price -= tick;
    assert.ok(price > 0 && price < bestAsk && !taken.has(price), 'no free price below the best ask');
    const placed = await apiOk('/v1/orders', {
      method: 'POST', token, headers: { 'Idempotency-Key': idempotencyKey('web-test-bid') },
      body: { market: market.name, side: 'buy', type: 'limit', tif: 'gtc',
        price: fromMicros(price), quantity: 1 },
    });
    assert.equal(placed.order.status, 'open', JSON.stringify(placed));
    const orderId = placed.order.id;
    const apiPrice = (await apiBook(market.name)).bids.find(([p]) => toMicros(p) === price)?.[0];
    assert.ok(apiPrice, 'the bid is not in the exchange\'s book');
    const bidRow = page.locator(`#book-bids tbody tr[data-price="${apiPrice}"]`);
    try {
      await bidRow.waitFor();
      assert.equal((await bidRow.locator('td.qty').textContent()).trim(), '1');
      await screenshot(page, 'markets-bid-desktop.png');
    } finally {
      const cancelled = await api(`/v1/orders/${orderId}`, { method: 'DELETE', token });
      assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
    }
    await bidRow.waitFor({ state: 'detached' });

    // A buy that crosses the best ask trades at once: a new row heads the trades table.
    const before = await trades(page);
    const crossAt = (await apiBook(market.name)).asks[0][0];
    const crossed = await apiOk('/v1/orders', {
      method: 'POST', token, headers: { 'Idempotency-Key': idempotencyKey('web-test-cross') },
      body: { market: market.name, side: 'buy', type: 'limit', tif: 'ioc', price: crossAt,
        quantity: 1 },
    });
    for (const fill of crossed.fills ?? []) if (fill.lease) leases.push(fill.lease);
    assert.equal(crossed.order.status, 'filled', JSON.stringify(crossed));
    assert.equal(crossed.fills.length, 1);
    const tradePrice = crossed.fills[0].price;
    await waitUntil(async () => {
      const now = await trades(page);
      return now.length > 0 && now[0].includes(tradePrice) &&
        (now.length > before.length || now[0].join('|') !== before[0]?.join('|'));
    }, `a new trade row at ${tradePrice} heading #trades-table`);
    const summaryAfter = await page.locator('#market-summary').textContent();
    assert.ok(summaryAfter.includes(tradePrice),
      `#market-summary should show the last trade ${tradePrice}: "${summaryAfter.trim()}"`);
    await screenshot(page, 'markets-trade-desktop.png');

    // Release the lease (the machine had no task): the provider offers it again, live.
    for (const lease of leases.splice(0)) {
      await apiOk(`/v1/leases/${lease}/release`, { method: 'POST', token });
    }
    await waitUntil(async () => (await apiBook(market.name)).asks.some(([p]) => p === crossAt),
      `the released machine's ask at ${crossAt} to come back`);
    await waitBookMatches(page, market.name, 'the page\'s book to show the ask again');

    assert.equal(await page.evaluate(() => window.__ocxNoReload), 'still here',
      'the page reloaded');
    assert.deepEqual(bookFetches, [],
      'the book was fetched over HTTP again instead of updated from book:MARKET');
    await screenshot(page, 'markets-desktop.png');
    session.check();
  } finally {
    for (const lease of leases) {
      await api(`/v1/leases/${lease}/release`, { method: 'POST', token: demo().consumer_token });
    }
    await session.close();
  }

  // The same page on a phone.
  const phone = await openPage(browser, { viewport: PHONE, phone: true });
  try {
    await openMarkets(phone.page, market, isDefault);
    await waitBookMatches(phone.page, market.name, 'the phone page\'s book');
    await screenshot(phone.page, 'markets-phone.png');
    phone.check();
  } finally {
    await phone.close();
  }
});

test('markets: the status reaches live and the nav links route', { timeout: TEST_TIMEOUT }, async () => {
  const session = await openPage(browser);
  const { page } = session;
  try {
    await page.goto(pageUrl('#/markets'));
    await page.locator('#live-status[data-state="live"]').waitFor({ timeout: TIMEOUT });
    for (const [href, section] of [['#/machines', 'page-machines'], ['#/me', 'page-me'],
      ['#/markets', 'page-markets']]) {
      await page.locator(`nav a[href="${href}"]`).click();
      await page.locator(`#${section}`).waitFor({ state: 'visible' });
      await assertOnlySectionVisible(page, section);
    }
    session.check();
  } finally {
    await session.close();
  }
});
