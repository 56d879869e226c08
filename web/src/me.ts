// The Me page: sign in with an API token, then the account's balances, orders, leases, jobs
// and statement, kept live from the private `orders` and `leases` channels.
//
// The token is checked with GET /v1/me and kept in sessionStorage (this tab only). Live
// messages name what changed; the page then reads that one order, lease or job again
// (GET /v1/orders/{id}, ...), and the balances and statement shortly after: event-driven,
// never polled. After each (re)subscription everything is read again, so nothing missed
// while the stream was down stays stale.

import { ApiError, describeError, getAll, getJson } from './api';
import { byId, dateTime, el, fillTable, shortTime, showError, td } from './dom';
import { JobDetail } from './job_detail';
import type { Stream } from './stream';
import type { Account, Job, Lease, LedgerEntry, Order, Statement, StreamMessage } from './types';

const kTokenKey = 'ocx.token';
const kRowsShown = 200;
const kStatementRowsShown = 500;
const kRefreshDelayMs = 150; // coalesces the bursts of messages one command sends

export class MePage {
  private readonly signin_form = byId<HTMLFormElement>('signin-form');
  private readonly token_input = byId<HTMLInputElement>('token-input');
  private readonly signin_submit = byId<HTMLButtonElement>('signin-submit');
  private readonly signin_error = byId('signin-error');
  private readonly error_box = byId('me-error');
  private readonly detail = new JobDetail();
  private token: string | null = null;
  private account: Account | null = null;
  private orders = new Map<number, Order>();
  private leases = new Map<number, Lease>();
  private jobs = new Map<number, Job>();
  private timers = new Map<string, number>();
  private load_generation = 0;

  constructor(private readonly stream: Stream) {
    this.signin_form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.signIn(this.token_input.value.trim());
    });
    byId('signout').addEventListener('click', () => this.signOut());
    byId('jobs-table').addEventListener('click', (e) => this.onJobClick(e));
    byId('jobs-table').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') this.onJobClick(e);
    });
    stream.onMessage((m) => this.onMessage(m));
  }

  // A token kept from earlier in this tab signs in again on load.
  start(): void {
    const kept = sessionStorage.getItem(kTokenKey);
    if (kept) void this.signIn(kept);
    else this.showSignedOut();
  }

  // ------------------------------------------------------------------ signing in and out

  private async signIn(token: string): Promise<void> {
    showError(this.signin_error, null);
    if (!token) {
      showError(this.signin_error, 'Enter an API token (ocx_…).');
      return;
    }
    this.signin_submit.disabled = true;
    let account: Account;
    try {
      account = await whoAmI(token);
    } catch (e) {
      this.signin_submit.disabled = false;
      sessionStorage.removeItem(kTokenKey);
      this.showSignedOut();
      const refused = e instanceof ApiError && (e.status === 401 || e.status === 403);
      showError(
        this.signin_error,
        refused ? `The exchange refused this token (${describeError(e)}).` : `Could not sign in: ${describeError(e)}`,
      );
      return;
    }
    this.signin_submit.disabled = false;
    sessionStorage.setItem(kTokenKey, token);
    this.token = token;
    this.account = account;
    this.token_input.value = '';
    this.showSignedIn();
    this.renderAccount();
    this.stream.setToken(token);
    this.stream.subscribe('orders');
    this.stream.subscribe('leases');
    await this.loadAll();
  }

  private signOut(): void {
    sessionStorage.removeItem(kTokenKey);
    this.stream.unsubscribe('orders');
    this.stream.unsubscribe('leases');
    this.stream.setToken(null);
    this.token = null;
    this.account = null;
    this.orders = new Map();
    this.leases = new Map();
    this.jobs = new Map();
    for (const timer of this.timers.values()) window.clearTimeout(timer);
    this.timers.clear();
    ++this.load_generation;
    this.detail.clear();
    this.showSignedOut();
  }

  private showSignedIn(): void {
    byId('me-signed-out').hidden = true;
    byId('me-signed-in').hidden = false;
    showError(this.error_box, null);
  }

  private showSignedOut(): void {
    byId('me-signed-in').hidden = true;
    byId('me-signed-out').hidden = false;
  }

  // ------------------------------------------------------------------ reading

  private async loadAll(): Promise<void> {
    const token = this.token;
    const account = this.account;
    if (!token || !account) return;
    const generation = ++this.load_generation;
    const current = () => generation === this.load_generation;
    const failures: string[] = [];
    const attempt = async (what: string, read: () => Promise<void>) => {
      try {
        await read();
      } catch (e) {
        if (current()) failures.push(`${what}: ${describeError(e)}`);
      }
    };
    await Promise.all([
      attempt('account', () => this.refreshAccount()),
      attempt('orders', async () => {
        const { items } = await getAll<Order>('/v1/orders', { token });
        if (!current()) return;
        this.orders = new Map(items.map((o) => [o.id, o]));
        this.renderOrders();
      }),
      attempt('leases', async () => {
        const { items } = await getAll<Lease>('/v1/leases', { token });
        if (!current()) return;
        this.leases = new Map(items.map((l) => [l.id, l]));
        this.renderLeases();
      }),
      attempt('jobs', async () => {
        const { items } = await getAll<Job>('/v1/jobs', { token });
        if (!current()) return;
        this.jobs = new Map(items.map((j) => [j.id, j]));
        this.renderJobs();
      }),
      attempt('statement', () => this.refreshStatement()),
    ]);
    if (current()) {
      showError(this.error_box, failures.length > 0 ? `Could not read ${failures.join('; ')}` : null);
    }
  }

  // Runs `read` once, kRefreshDelayMs after the last call with this key.
  private soon(key: string, read: () => Promise<void>): void {
    const previous = this.timers.get(key);
    if (previous !== undefined) window.clearTimeout(previous);
    const generation = this.load_generation;
    this.timers.set(
      key,
      window.setTimeout(() => {
        this.timers.delete(key);
        read().catch((e: unknown) => {
          if (generation === this.load_generation && this.token) {
            showError(this.error_box, `Could not refresh ${key}: ${describeError(e)}`);
          }
        });
      }, kRefreshDelayMs),
    );
  }

  private async refreshAccount(): Promise<void> {
    const token = this.token;
    if (!token || !this.account) return;
    const account = (await getJson<{ account: Account }>(`/v1/accounts/${this.account.id}`, { token })).account;
    if (token !== this.token) return;
    this.account = account;
    this.renderAccount();
  }

  private async refreshStatement(): Promise<void> {
    const token = this.token;
    if (!token || !this.account) return;
    const statement = await getJson<Statement>(`/v1/accounts/${this.account.id}/statement`, { token });
    if (token !== this.token) return;
    this.renderStatement(statement);
  }

  // Re-reads one resource named by a stream event; drops the answer if the user signed out
  // or in as someone else meanwhile.
  private async refreshOne<T>(path: string, key: string, apply: (item: T) => void): Promise<void> {
    const token = this.token;
    if (!token) return;
    const answer = await getJson<Record<string, T | undefined>>(path, { token });
    if (token !== this.token) return;
    const item = answer[key];
    if (item !== undefined) apply(item);
  }

  private refreshOrder(id: number): Promise<void> {
    return this.refreshOne<Order>(`/v1/orders/${id}`, 'order', (order) => {
      this.orders.set(id, order);
      this.renderOrders();
    });
  }

  private refreshLease(id: number): Promise<void> {
    return this.refreshOne<Lease>(`/v1/leases/${id}`, 'lease', (lease) => {
      this.leases.set(id, lease);
      this.renderLeases();
    });
  }

  private refreshJob(id: number): Promise<void> {
    return this.refreshOne<Job>(`/v1/jobs/${id}`, 'job', (job) => {
      this.jobs.set(id, job);
      this.renderJobs();
      this.detail.setJob(job);
    });
  }

  // The balances and the statement move with every order and lease event.
  private moneyMoved(): void {
    this.soon('balances', () => this.refreshAccount());
    this.soon('statement', () => this.refreshStatement());
  }

  // ------------------------------------------------------------------ live

  private onMessage(m: StreamMessage): void {
    if (!this.token) return;
    switch (m.type) {
      case 'subscribed':
        // A (re)subscription: read everything again, events may have been missed.
        if (m.channel === 'leases') void this.loadAll();
        return;
      case 'error':
        if (m.error.code === 'unauthenticated') showError(this.error_box, `Live updates: ${m.error.message}`);
        return;
      case 'order':
        this.soon(`order ${m.order}`, () => this.refreshOrder(m.order));
        this.moneyMoved();
        return;
      case 'lease_started':
      case 'lease_usage':
      case 'lease_ended':
        this.soon(`lease ${m.lease}`, () => this.refreshLease(m.lease));
        this.moneyMoved();
        return;
      case 'job_submitted':
      case 'job_ended':
        if (m.type === 'job_ended') this.detail.setJobState(m.job, m.state);
        this.soon(`job ${m.job}`, () => this.refreshJob(m.job));
        return;
      case 'job_task': {
        const job = this.jobs.get(m.job);
        const task = { index: m.task_index, state: m.state, attempts: m.attempts, order: m.order, lease: m.lease, machine: m.machine };
        if (job?.tasks) job.tasks = job.tasks.map((t) => (t.index === m.task_index ? task : t));
        this.detail.updateTask(m.job, task);
        this.soon(`job ${m.job}`, () => this.refreshJob(m.job));
        return;
      }
      case 'task_assigned':
        if (m.job !== undefined && m.task_index !== undefined) this.detail.assign(m.job, m.task_index, m.lease);
        return;
      case 'task_log':
        this.detail.append(m.lease, m.stream, m.data);
        return;
      case 'task_finished':
        this.detail.finished(m.lease, m.result);
        return;
      default:
        return;
    }
  }

  private onJobClick(e: Event): void {
    const row = (e.target as Element | null)?.closest<HTMLTableRowElement>('tr[data-job]');
    if (!row || !this.token) return;
    e.preventDefault();
    void this.detail.open(Number(row.dataset['job']), this.token);
  }

  // ------------------------------------------------------------------ rendering

  private renderAccount(): void {
    const a = this.account;
    if (!a) return;
    byId('account-name').textContent = a.name;
    byId('account-meta').textContent = `account ${a.id} · ${a.role}`;
    const kinds: [string, string][] = [
      ['available', 'Available'],
      ['held', 'Held for orders'],
      ['escrow', 'In escrow'],
      ['earnings', 'Earnings'],
    ];
    byId('balances').replaceChildren(
      ...kinds.map(([kind, label]) =>
        el('div', { class: 'stat' }, el('dt', {}, label), el('dd', { 'data-balance': kind }, a.balances[kind] ?? '0')),
      ),
    );
  }

  private renderOrders(): void {
    const rows = newestFirst(this.orders).map((o) =>
      el(
        'tr',
        { 'data-order': o.id, 'data-status': o.status },
        td(o.id, 'num'),
        td(o.market),
        td(o.side, `side side-${o.side}`),
        td(o.price ?? 'market', 'num'),
        td(`${o.filled} / ${o.quantity}`, 'num'),
        el('td', {}, el('span', { class: 'badge', 'data-state': o.status }, o.status), o.cancel_reason ? ` ${o.cancel_reason}` : null),
        td(shortTime(o.updated_time), 'time'),
      ),
    );
    fillTable(byId<HTMLTableElement>('orders-table'), rows, 'No orders yet.');
  }

  private renderLeases(): void {
    const me = this.account?.id;
    const rows = newestFirst(this.leases).map((l) =>
      el(
        'tr',
        { 'data-lease': l.id, 'data-status': l.status },
        td(l.id, 'num'),
        td(l.buyer === me ? 'buyer' : 'seller'),
        td(l.machine, 'num'),
        td(l.slots, 'num'),
        td(l.price, 'num'),
        td(l.billed_total, 'num'),
        el('td', {}, el('span', { class: 'badge', 'data-state': l.status }, l.status), l.end_reason ? ` ${l.end_reason}` : null),
      ),
    );
    fillTable(byId<HTMLTableElement>('leases-table'), rows, 'No leases yet.');
  }

  private renderJobs(): void {
    const open = this.detail.jobId;
    const rows = newestFirst(this.jobs).map((j) =>
      el(
        'tr',
        { 'data-job': j.id, tabindex: 0, class: j.id === open ? 'selected' : null, title: 'Show this job' },
        td(`#${j.id}`, 'num'),
        el('td', { class: 'job-state' }, el('span', { class: 'badge', 'data-state': j.state }, j.state)),
        td(j.tasks_count, 'num'),
        td(j.market),
        td(j.max_price, 'num'),
        td(shortTime(j.submitted_time), 'time'),
        td(j.constraints || '—', 'mono'),
      ),
    );
    fillTable(byId<HTMLTableElement>('jobs-table'), rows, 'No jobs yet. Submit one with ocx run.');
  }

  private renderStatement(s: Statement): void {
    const me = this.account?.id;
    const entries = s.entries.slice(-kStatementRowsShown).reverse();
    const rows = entries.map((e) => statementRow(e, me));
    fillTable(byId<HTMLTableElement>('statement-table'), rows, 'No entries yet.');
    const closing = s.balances.map((b) => `${b.balance} ${b.closing}`).join(' · ');
    byId('statement-note').textContent =
      `${s.entries.length} ${s.entries.length === 1 ? 'entry' : 'entries'}` +
      (s.entries.length > kStatementRowsShown ? `, newest ${kStatementRowsShown} shown` : '') +
      (s.truncated ? ' (the exchange truncated the statement)' : '') +
      (closing ? ` · closing: ${closing}` : '');
  }
}

// GET /v1/me; against an exchange without it (404 not_found), the stream's auth reply
// names the account instead.
async function whoAmI(token: string): Promise<Account> {
  try {
    return (await getJson<{ account: Account }>('/v1/me', { token })).account;
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) throw e;
  }
  const id = await accountIdFromStream(token);
  return (await getJson<{ account: Account }>(`/v1/accounts/${id}`, { token })).account;
}

function accountIdFromStream(token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/v1/stream`);
    const fail = (code: string, message: string) => {
      socket.close();
      reject(new ApiError(401, code, message));
    };
    const timer = window.setTimeout(() => fail('timeout', 'The exchange did not answer.'), 10_000);
    socket.onopen = () => socket.send(JSON.stringify({ op: 'auth', token }));
    socket.onmessage = (event: MessageEvent) => {
      const m = JSON.parse(String(event.data)) as StreamMessage;
      window.clearTimeout(timer);
      if (m.type === 'authenticated') {
        socket.close();
        resolve(m.account);
      } else if (m.type === 'error') {
        fail(m.error.code, m.error.message);
      }
    };
    socket.onerror = () => {
      window.clearTimeout(timer);
      fail('network', 'The exchange could not be reached.');
    };
  });
}

function newestFirst<T>(items: Map<number, T>): T[] {
  return [...items.entries()]
    .sort(([a], [b]) => b - a)
    .slice(0, kRowsShown)
    .map(([, item]) => item);
}

// One ledger entry from the account's side: money in is +, out is -, a move between two of
// its own balances shows both.
function statementRow(e: LedgerEntry, me: number | undefined): HTMLTableRowElement {
  const from_me = e.from.account === me;
  const to_me = e.to.account === me;
  let amount = e.amount;
  let balance: string;
  let counterparty = '—';
  if (from_me && to_me) {
    balance = `${e.from.balance} → ${e.to.balance}`;
  } else if (to_me) {
    amount = `+${e.amount}`;
    balance = e.to.balance;
    counterparty = e.from.account === 0 ? e.from.balance : `account ${e.from.account}`;
  } else {
    amount = `−${e.amount}`;
    balance = e.from.balance;
    counterparty = e.to.account === 0 ? e.to.balance : `account ${e.to.account}`;
  }
  return el(
    'tr',
    { 'data-entry': e.entry },
    td(dateTime(e.time), 'time'),
    td(e.kind),
    td(amount, `num ${to_me && !from_me ? 'credit' : from_me && !to_me ? 'debit' : ''}`),
    td(balance),
    td(counterparty),
    td(e.reference || '—', 'num'),
  );
}
