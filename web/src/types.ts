// The API's JSON shapes that the dashboard reads (docs/api.md, docs/formats/*.md).
// Money and prices are decimal strings; ids, quantities and counts are numbers; times are
// microseconds since the epoch.

export interface Page<T> {
  items: T[];
  next_after: number | null;
}

export interface Market {
  name: string;
  tick: string;
  taker_fee_bps: number;
  maker_fee_bps: number;
  slot: { vcpus: number; mem_mib: number; disk_gib: number; gpus: number; gpu_model: string };
  best_bid: string | null;
  best_ask: string | null;
  last_trade: { price: string; quantity: number; time: number } | null;
}

export type Level = [price: string, quantity: number];

export interface Book {
  market: string;
  sequence: number;
  bids: Level[];
  asks: Level[];
}

export interface Trade {
  id?: number; // REST only
  sequence: number;
  time: number;
  market: string;
  price: string;
  quantity: number;
  taker_side: 'buy' | 'sell';
  lease: number;
}

export type Attribute = string | number;

export interface Machine {
  id: number;
  owner: number;
  name: string;
  online: boolean;
  attributes: Record<string, Attribute>;
  capacity: Record<string, number>;
  reputation: string;
  ask?: string | null;
}

export interface OffersAnswer {
  items: Machine[];
  total_matching: number;
  machines_online: number;
  market: string;
  query: string;
  sort: string;
  explain?: {
    clause: string;
    matching_alone: number;
    ruled_out_alone: number;
    remaining_after: number;
  }[];
}

export interface Balances {
  available: string;
  held: string;
  escrow: string;
  earnings: string;
  [kind: string]: string;
}

export interface Account {
  id: number;
  name: string;
  role: string;
  created_time: number;
  balances: Balances;
}

export interface Order {
  id: number;
  market: string;
  side: 'buy' | 'sell';
  account: number;
  quantity: number;
  remaining: number;
  filled: number;
  status: string;
  price: string | null;
  created_time: number;
  updated_time: number;
  cancel_reason?: string;
}

export interface Lease {
  id: number;
  buyer: number;
  seller: number;
  machine: number;
  market: string;
  slots: number;
  price: string;
  max_hours: number;
  start: number;
  escrow: string;
  billed_total: string;
  billed_seconds: number;
  status: string;
  end_reason?: string;
  end_time?: number;
}

export interface JobTask {
  index: number;
  state: string;
  attempts: number;
  order: number;
  lease: number;
  machine: number;
}

export interface Job {
  id: number;
  owner: number;
  client_job_id: string;
  market: string;
  tasks_count: number;
  slots_per_task: number;
  max_price: string;
  max_hours: number;
  constraints: string;
  state: string;
  submitted_time: number;
  end_time?: number;
  tasks?: JobTask[];
  task_spec?: { command?: string[] };
}

export interface BlobRef {
  sha256: string;
  size: number;
  truncated: boolean;
}

export interface TaskResult {
  status: string;
  exit_code: number;
  term_signal: number;
  wall_ms?: number;
  stdout?: BlobRef;
  stderr?: BlobRef;
  message?: string;
}

export interface Task {
  lease: number;
  machine: number;
  status: 'running' | 'finished' | 'lost' | string;
  result?: TaskResult;
}

export interface LedgerEntry {
  entry: number;
  sequence: number;
  time: number;
  from: { account: number; balance: string };
  to: { account: number; balance: string };
  amount: string;
  kind: string;
  reference: number;
}

export interface Statement {
  account: number;
  from: number;
  to: number;
  balances: { balance: string; opening: string; closing: string }[];
  entries: LedgerEntry[];
  truncated: boolean;
}

// Messages on /v1/stream (docs/api.md). Only the fields the dashboard reads are typed.
export type StreamMessage =
  | { type: 'book_snapshot' | 'book_update'; market: string; sequence: number; bids: Level[]; asks: Level[] }
  | ({ type: 'trade' } & Trade)
  | { type: 'order'; order: number; event: string; sequence: number }
  | { type: 'lease_started'; lease: number }
  | { type: 'lease_usage'; lease: number }
  | { type: 'lease_ended'; lease: number }
  | { type: 'task_assigned'; lease: number; machine: number; job?: number; task_index?: number }
  | { type: 'task_log'; lease: number; stream: 'stdout' | 'stderr'; data: string }
  | { type: 'task_finished'; lease: number; result: TaskResult | null }
  | { type: 'job_submitted'; job: number; tasks: number }
  | ({ type: 'job_task'; job: number; task_index: number } & Omit<JobTask, 'index'>)
  | { type: 'job_ended'; job: number; state: string }
  | { type: 'subscribed' | 'unsubscribed'; channel: string }
  | { type: 'authenticated'; account: number }
  | { type: 'pong' }
  | { type: 'error'; error: { code: string; message: string } };
