// Small DOM and formatting helpers. Every text from the exchange goes through textContent
// (el()'s string children become text nodes), never innerHTML.

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined>;

// The element with this id; the page skeleton (index.html) guarantees it exists.
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`index.html has no #${id}`);
  return found as T;
}

// Creates <tag> with attributes (class, data-*, ...) and children (strings become text).
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === 'object' ? child : String(child));
  }
  return node;
}

export function td(text: Child, className?: string): HTMLTableCellElement {
  return el('td', className ? { class: className } : {}, text);
}

// Shows or hides an error box with a sentence (null hides it).
export function showError(box: HTMLElement, message: string | null): void {
  box.hidden = message === null;
  box.textContent = message ?? '';
}

// Replaces the rows of a table's tbody, or shows one muted row saying it is empty.
export function fillTable(table: HTMLTableElement, rows: HTMLTableRowElement[], empty: string): void {
  const body = table.tBodies[0];
  if (!body) throw new Error('table without tbody');
  if (rows.length === 0) {
    const columns = table.tHead?.rows[0]?.cells.length ?? 1;
    body.replaceChildren(el('tr', { class: 'empty-row' }, el('td', { colspan: columns }, empty)));
    return;
  }
  body.replaceChildren(...rows);
}

// ------------------------------------------------------------------ formatting

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

// Microseconds since the epoch -> local "YYYY-MM-DD HH:MM:SS".
export function dateTime(micros: number | null | undefined): string {
  if (!micros) return '—';
  const d = new Date(micros / 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(micros)}`;
}

// Microseconds since the epoch -> local "HH:MM:SS" today, "YYYY-MM-DD HH:MM" before.
export function shortTime(micros: number | null | undefined): string {
  if (!micros) return '—';
  const d = new Date(micros / 1000);
  if (d.toDateString() === new Date().toDateString()) return clock(micros);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// Microseconds since the epoch -> local "HH:MM:SS".
export function clock(micros: number): string {
  const d = new Date(micros / 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// A JSON number or decimal attribute for display ("—" when absent).
export function show(value: unknown): string {
  if (value === null || value === undefined || value === '') return '—';
  return String(value);
}
