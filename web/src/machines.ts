// The Machines page: discovery (GET /v1/offers, docs/formats/query.md). The query and sort
// go to the exchange as typed; a refused one (400 invalid_query / invalid_sort) is shown with
// its column and the exchange's own caret display.

import { ApiError, describeError, getJson } from './api';
import { byId, el, fillTable, show, showError, td } from './dom';
import type { Machine, Market, OffersAnswer } from './types';

const kLimit = 100;
const kExample = 'cpu.cores >= 2 && region in ["eu", "us"]';

export class MachinesPage {
  private readonly form = byId<HTMLFormElement>('query-form');
  private readonly query = byId<HTMLInputElement>('query-input');
  private readonly sort = byId<HTMLInputElement>('sort-input');
  private readonly market = byId<HTMLSelectElement>('offers-market');
  private readonly explain = byId<HTMLInputElement>('explain-input');
  private readonly submit = byId<HTMLButtonElement>('query-submit');
  private readonly query_error = byId('query-error');
  private readonly other_error = byId('offers-error');
  private started = false;
  private search_number = 0;

  constructor() {
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.search();
    });
    byId('query-example').addEventListener('click', () => {
      this.query.value = kExample;
      void this.search();
    });
  }

  // The first visit fills the market list and lists every machine.
  async show(markets: Market[]): Promise<void> {
    if (this.started) return;
    this.started = true;
    if (markets.length === 0) {
      try {
        markets = (await getJson<{ items: Market[] }>('/v1/markets')).items;
      } catch (e) {
        showError(this.other_error, `Could not read the markets: ${describeError(e)}`);
      }
    }
    this.market.replaceChildren(...markets.map((m) => el('option', { value: m.name }, m.name)));
    await this.search();
  }

  private async search(): Promise<void> {
    const number = ++this.search_number;
    const params = new URLSearchParams();
    params.set('q', this.query.value);
    params.set('sort', this.sort.value);
    if (this.market.value) params.set('market', this.market.value);
    params.set('limit', String(kLimit));
    if (this.explain.checked) params.set('explain', '1');
    this.submit.disabled = true;
    this.form.setAttribute('aria-busy', 'true');
    try {
      const answer = await getJson<OffersAnswer>(`/v1/offers?${params.toString()}`);
      if (number !== this.search_number) return;
      this.hideErrors();
      this.render(answer);
    } catch (e) {
      if (number !== this.search_number) return;
      this.showRefusal(e);
    } finally {
      if (number === this.search_number) {
        this.submit.disabled = false;
        this.form.removeAttribute('aria-busy');
      }
    }
  }

  private hideErrors(): void {
    this.query_error.hidden = true;
    this.query_error.removeAttribute('data-code');
    this.query_error.removeAttribute('data-column');
    showError(this.other_error, null);
  }

  private showRefusal(e: unknown): void {
    this.hideErrors();
    if (e instanceof ApiError && (e.code === 'invalid_query' || e.code === 'invalid_sort')) {
      const column = e.detail['column'];
      const display = e.detail['display'];
      this.query_error.dataset['code'] = e.code;
      if (typeof column === 'number') this.query_error.dataset['column'] = String(column);
      this.query_error.querySelector('.query-error-message')!.textContent =
        `${e.code === 'invalid_sort' ? 'The sort' : 'The query'} was refused: ${e.message}`;
      this.query_error.querySelector('pre')!.textContent =
        typeof display === 'string' ? display : '';
      this.query_error.hidden = false;
      (e.code === 'invalid_sort' ? this.sort : this.query).setAttribute('aria-invalid', 'true');
    } else {
      showError(this.other_error, `The search failed: ${describeError(e)}`);
    }
    byId('offers-total').textContent = 'No results';
    delete byId('offers-total').dataset['total'];
    byId('offers-query').textContent = '';
    fillTable(byId<HTMLTableElement>('offers-table'), [], 'No results.');
    byId('offers-explain').hidden = true;
  }

  private render(answer: OffersAnswer): void {
    this.query.removeAttribute('aria-invalid');
    this.sort.removeAttribute('aria-invalid');
    const n = answer.total_matching;
    const total = byId('offers-total');
    total.dataset['total'] = String(n);
    total.textContent =
      `${n} ${n === 1 ? 'machine matches' : 'machines match'} (of ${answer.machines_online} online)` +
      (answer.items.length < n ? `, first ${answer.items.length} shown` : '');
    byId('offers-query').textContent = answer.query ? `${answer.query} · sort ${answer.sort}` : `sort ${answer.sort}`;
    fillTable(
      byId<HTMLTableElement>('offers-table'),
      answer.items.map(machineRow),
      'No online machine matches this query.',
    );

    const explain = byId('offers-explain');
    explain.hidden = answer.explain === undefined;
    if (answer.explain) {
      fillTable(
        byId<HTMLTableElement>('explain-table'),
        answer.explain.map((c) =>
          el(
            'tr',
            {},
            td(c.clause, 'mono'),
            td(c.matching_alone, 'num'),
            td(c.ruled_out_alone, 'num'),
            td(c.remaining_after, 'num'),
          ),
        ),
        'An empty query has no clauses.',
      );
    }
  }
}

function machineRow(m: Machine): HTMLTableRowElement {
  const a = m.attributes;
  const gpus = Number(a['gpu.count'] ?? 0);
  const memory = a['mem.gib'];
  const cpu = [a['cpu.model'], a['cpu.factor'] !== undefined ? `×${a['cpu.factor']}` : null]
    .filter((x) => x !== null && x !== undefined)
    .join(' ');
  return el(
    'tr',
    { 'data-machine': m.id },
    el('td', { class: 'name' }, el('span', { class: m.online ? 'dot dot-on' : 'dot', title: m.online ? 'online' : 'offline' }), m.name),
    td(show(a['region'])),
    td(show(a['cpu.cores']), 'num'),
    td(typeof memory === 'number' ? `${round1(memory)} GiB` : show(memory), 'num'),
    td(gpus > 0 ? `${gpus} × ${show(a['gpu.model'])}` : '—'),
    td(show(m.ask), 'num price'),
    td(m.reputation, 'num'),
    td(cpu || '—', 'muted'),
  );
}

function round1(x: number): string {
  return String(Math.round(x * 10) / 10);
}
