// The Markets page: one market's book (depth chart and tables), last trades and price chart.
//
// Initial state over HTTP (GET /v1/markets, .../book?depth=50, .../trades), then live over the
// stream: `book:M` answers a subscription with a full book_snapshot and then sends
// book_update (the changed levels; quantity 0 removes one); `trades:M` sends each trade.
// After every (re)subscription the trades are read again over HTTP, and trades that arrive
// meanwhile are held back and merged by sequence, so none is lost or shown twice.

import { ApiError, describeError, getAll, getJson } from './api';
import { compare, subtract, toMicros } from './decimal';
import { DepthChart } from './depth_chart';
import { byId, clock, el, fillTable, showError, td } from './dom';
import { PriceChart } from './price_chart';
import type { Stream } from './stream';
import type { Book, Level, Market, StreamMessage, Trade } from './types';

const kBookLevelsShown = 50;
const kTradesShown = 50;
const kTradesKept = 5000; // for the price chart

// One side of the book: price (micro-units, as text) -> [price as the API wrote it, qty].
type Side = Map<string, Level>;

export class MarketsPage {
  private readonly select = byId<HTMLSelectElement>('market-select');
  private readonly error_box = byId('markets-error');
  private readonly depth: DepthChart;
  private readonly price: PriceChart;
  private markets: Market[] = [];
  private market: string | null = null;
  private bids: Side = new Map();
  private asks: Side = new Map();
  private book_sequence = 0;
  private have_snapshot = false;
  private trades: Trade[] = []; // oldest first
  private pending_trades: Trade[] | null = null; // live trades held while HTTP loads
  private last_trade: Market['last_trade'] = null;
  private trades_load = 0; // generation: a newer load supersedes an older one

  constructor(private readonly stream: Stream) {
    this.depth = new DepthChart(byId('depth-chart'));
    const empty_note = document.querySelector<HTMLElement>('[data-for="price-chart"]');
    this.price = new PriceChart(byId('price-chart'), (empty) => {
      if (empty_note) empty_note.hidden = !empty;
    });
    this.select.addEventListener('change', () => void this.choose(this.select.value));
    stream.onMessage((m) => this.onMessage(m));
  }

  async start(): Promise<void> {
    try {
      this.markets = (await getJson<{ items: Market[] }>('/v1/markets')).items;
    } catch (e) {
      showError(this.error_box, `Could not read the markets: ${describeError(e)}`);
      return;
    }
    this.select.replaceChildren(...this.markets.map((m) => el('option', { value: m.name }, m.name)));
    const first = this.markets[0];
    if (first) await this.choose(first.name);
    else showError(this.error_box, 'The exchange has no markets.');
  }

  getMarkets(): Market[] {
    return this.markets;
  }

  private async choose(name: string): Promise<void> {
    if (this.market) {
      this.stream.unsubscribe(`book:${this.market}`);
      this.stream.unsubscribe(`trades:${this.market}`);
    }
    this.market = name;
    this.select.value = name;
    const market = this.markets.find((m) => m.name === name);
    this.last_trade = market?.last_trade ?? null;
    if (market) {
      this.price.setTick(market.tick);
      const s = market.slot;
      byId('market-spec').textContent =
        `One slot: ${s.vcpus} vCPU, ${s.mem_mib / 1024} GiB memory, ${s.disk_gib} GiB disk` +
        (s.gpus > 0 ? `, ${s.gpus} × ${s.gpu_model || 'GPU'}` : '') +
        ` · prices per slot-hour · tick ${market.tick} · taker fee ${market.taker_fee_bps} bp`;
    }
    this.bids = new Map();
    this.asks = new Map();
    this.have_snapshot = false;
    this.book_sequence = 0;
    this.trades = [];
    this.pending_trades = [];
    this.renderBook();
    this.renderTrades();
    this.price.setTrades([]);
    showError(this.error_box, null);

    // Subscribing sends the book's snapshot, and "subscribed" for trades starts their load.
    this.stream.subscribe(`book:${name}`);
    this.stream.subscribe(`trades:${name}`);
    // HTTP too, so the page is filled even while the stream is (re)connecting.
    await Promise.all([this.loadBook(name), this.loadTrades(name)]);
  }

  private async loadBook(name: string): Promise<void> {
    try {
      const book = await getJson<Book>(`/v1/markets/${encodeURIComponent(name)}/book?depth=${kBookLevelsShown}`);
      // The stream's snapshot is the full book and wins over this one.
      if (name !== this.market || this.have_snapshot) return;
      this.setBook(book);
    } catch (e) {
      if (name === this.market) showError(this.error_box, `Could not read the book: ${describeError(e)}`);
    }
  }

  private async loadTrades(name: string): Promise<void> {
    const generation = ++this.trades_load;
    if (this.pending_trades === null) this.pending_trades = [];
    try {
      const { items } = await getAll<Trade>(`/v1/markets/${encodeURIComponent(name)}/trades`, {}, 50);
      if (name !== this.market || generation !== this.trades_load) return;
      // Live trades that arrived while loading: those after the last one read.
      const read_up_to = items.at(-1)?.sequence ?? 0;
      const later = (this.pending_trades ?? []).filter((t) => t.sequence > read_up_to);
      this.pending_trades = null;
      this.trades = [...items, ...later].slice(-kTradesKept);
      const newest = this.trades.at(-1);
      if (newest) this.last_trade = { price: newest.price, quantity: newest.quantity, time: newest.time };
      this.price.setTrades(this.trades);
      this.renderTrades();
      this.renderSummary();
    } catch (e) {
      if (name !== this.market || generation !== this.trades_load) return;
      this.pending_trades = null;
      const what = e instanceof ApiError ? e.describe() : describeError(e);
      showError(this.error_box, `Could not read the trades: ${what}`);
    }
  }

  private onMessage(m: StreamMessage): void {
    if (!this.market) return;
    switch (m.type) {
      case 'subscribed':
        if (m.channel === `trades:${this.market}`) void this.loadTrades(this.market);
        return;
      case 'book_snapshot':
        if (m.market !== this.market) return;
        this.have_snapshot = true;
        this.setBook(m);
        return;
      case 'book_update':
        if (m.market !== this.market || m.sequence <= this.book_sequence) return;
        this.book_sequence = m.sequence;
        apply(this.bids, m.bids);
        apply(this.asks, m.asks);
        this.renderBook();
        return;
      case 'trade':
        if (m.market !== this.market) return;
        if (this.pending_trades !== null) {
          this.pending_trades.push(m);
          return;
        }
        this.trades.push(m);
        if (this.trades.length > kTradesKept) this.trades.shift();
        this.last_trade = { price: m.price, quantity: m.quantity, time: m.time };
        this.price.addTrade(m);
        this.renderTrades();
        this.renderSummary();
        return;
      default:
        return;
    }
  }

  private setBook(book: { sequence: number; bids: Level[]; asks: Level[] }): void {
    this.book_sequence = book.sequence;
    this.bids = new Map();
    this.asks = new Map();
    apply(this.bids, book.bids);
    apply(this.asks, book.asks);
    this.renderBook();
  }

  private renderBook(): void {
    const bids = sorted(this.bids, 'desc');
    const asks = sorted(this.asks, 'asc');
    this.depth.set(bids, asks);
    fillTable(byId<HTMLTableElement>('book-bids'), levelRows(bids.slice(0, kBookLevelsShown)), 'No bids.');
    fillTable(byId<HTMLTableElement>('book-asks'), levelRows(asks.slice(0, kBookLevelsShown)), 'No asks.');
    this.renderSummary();
  }

  private renderSummary(): void {
    const best_bid = sorted(this.bids, 'desc')[0]?.[0] ?? null;
    const best_ask = sorted(this.asks, 'asc')[0]?.[0] ?? null;
    const field = (name: string) => byId('market-summary').querySelector<HTMLElement>(`[data-field="${name}"]`)!;
    field('best-bid').textContent = best_bid ?? '—';
    field('best-ask').textContent = best_ask ?? '—';
    field('spread').textContent = best_bid && best_ask ? subtract(best_ask, best_bid) : '—';
    const last = field('last-price');
    last.replaceChildren();
    if (this.last_trade) {
      last.append(
        this.last_trade.price,
        el('span', { class: 'stat-note' }, ` ${this.last_trade.quantity} @ ${clock(this.last_trade.time)}`),
      );
    } else {
      last.textContent = '—';
    }
  }

  private renderTrades(): void {
    const rows: HTMLTableRowElement[] = [];
    for (let i = this.trades.length - 1; i >= 0 && rows.length < kTradesShown; --i) {
      const t = this.trades[i]!;
      rows.push(
        el(
          'tr',
          { 'data-sequence': t.sequence, 'data-price': t.price },
          td(clock(t.time), 'time'),
          td(t.price, `price ${t.taker_side === 'buy' ? 'bid' : 'ask'}`),
          td(t.quantity, 'qty'),
          td(t.taker_side, `side side-${t.taker_side}`),
        ),
      );
    }
    fillTable(byId<HTMLTableElement>('trades-table'), rows, 'No trades yet.');
  }
}

function apply(side: Side, levels: Level[]): void {
  for (const [price, qty] of levels) {
    const key = toMicros(price).toString();
    if (qty === 0) side.delete(key);
    else side.set(key, [price, qty]);
  }
}

function sorted(side: Side, order: 'asc' | 'desc'): Level[] {
  const levels = [...side.values()];
  levels.sort((a, b) => (order === 'asc' ? compare(a[0], b[0]) : compare(b[0], a[0])));
  return levels;
}

function levelRows(levels: Level[]): HTMLTableRowElement[] {
  let total = 0;
  return levels.map(([price, qty]) => {
    total += qty;
    return el('tr', { 'data-price': price }, td(price, 'price'), td(qty, 'qty'), td(total, 'total'));
  });
}
