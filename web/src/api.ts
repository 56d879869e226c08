// Same-origin calls to the exchange's HTTP API (docs/api.md). A refusal
// ({"error":{"code","message",...}}) becomes an ApiError carrying the code and the whole error
// object, so pages can show it; a network failure becomes an ApiError with code "network".

import type { Page } from './types';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly detail: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  // "code: message", the way the dashboard shows a refusal.
  describe(): string {
    return `${this.code}: ${this.message}`;
  }
}

export interface CallOptions {
  method?: string;
  token?: string | null;
  signal?: AbortSignal;
}

async function send(path: string, options: CallOptions): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (options.token) headers['Authorization'] = `Bearer ${options.token}`;
  let response: Response;
  try {
    const init: RequestInit = { method: options.method ?? 'GET', headers, cache: 'no-store' };
    if (options.signal) init.signal = options.signal;
    response = await fetch(path, init);
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'The exchange could not be reached.');
  }
  if (response.ok) return response;
  // A refusal: the body is {"error":{...}}; anything else is reported by its status.
  let error: Record<string, unknown> | null = null;
  try {
    const body: unknown = await response.json();
    if (body && typeof body === 'object' && 'error' in body) {
      error = (body as { error: Record<string, unknown> }).error;
    }
  } catch {
    // Not JSON: fall through.
  }
  if (error && typeof error['code'] === 'string') {
    const message = typeof error['message'] === 'string' ? error['message'] : '';
    throw new ApiError(response.status, error['code'], message, error);
  }
  throw new ApiError(response.status, 'http_' + response.status, `HTTP ${response.status} ${response.statusText}`);
}

// GET (or another method) a JSON document.
export async function getJson<T>(path: string, options: CallOptions = {}): Promise<T> {
  const response = await send(path, options);
  return (await response.json()) as T;
}

// Downloads a blob as text (task logs are UTF-8; bad bytes show as U+FFFD).
export async function getText(path: string, options: CallOptions = {}): Promise<string> {
  const response = await send(path, options);
  return await response.text();
}

// Every item of a paginated list ({"items","next_after"}), oldest first: the API pages
// ascending by id, so the newest items are on the last page. Stops after `max_pages`.
export async function getAll<T>(
  path: string,
  options: CallOptions = {},
  max_pages = 20,
): Promise<{ items: T[]; complete: boolean }> {
  const items: T[] = [];
  let after: number | null = null;
  for (let page = 0; page < max_pages; ++page) {
    const separator = path.includes('?') ? '&' : '?';
    const url: string = `${path}${separator}limit=1000${after === null ? '' : `&after=${after}`}`;
    const answer: Page<T> = await getJson<Page<T>>(url, options);
    items.push(...answer.items);
    if (answer.next_after === null || answer.items.length === 0) return { items, complete: true };
    after = answer.next_after;
  }
  return { items, complete: false };
}

// A message for any error caught from these calls.
export function describeError(e: unknown): string {
  if (e instanceof ApiError) return e.describe();
  if (e instanceof Error) return e.message;
  return String(e);
}
