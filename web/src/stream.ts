// The one /v1/stream WebSocket of the page, shared by every view.
//
// It keeps the set of channels the views want and the API token (for the private `orders`
// and `leases` channels), and re-sends both after every reconnect: views do not track the
// connection. On close it reconnects with exponential back-off (0.5 s doubling to 15 s, with
// jitter). #live-status mirrors the state: `live` while open, `connecting` or `offline`.

import type { StreamMessage } from './types';

export type StreamState = 'connecting' | 'live' | 'offline';
type Listener = (message: StreamMessage) => void;

const kBackoffFirstMs = 500;
const kBackoffMaxMs = 15_000;
const kPingIntervalMs = 25_000;

export class Stream {
  private socket: WebSocket | null = null;
  private state_: StreamState = 'offline';
  private readonly channels = new Set<string>();
  private token: string | null = null;
  private backoff_ms = kBackoffFirstMs;
  private reconnect_timer: number | null = null;
  private ping_timer: number | null = null;
  private readonly listeners = new Set<Listener>();
  private readonly state_listeners = new Set<(state: StreamState) => void>();

  constructor(private readonly url: string) {}

  get state(): StreamState {
    return this.state_;
  }

  start(): void {
    this.connect();
    // A tab coming back from sleep or a network change: retry at once.
    window.addEventListener('online', () => this.retryNow());
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') this.retryNow();
    });
  }

  onMessage(listener: Listener): void {
    this.listeners.add(listener);
  }

  onState(listener: (state: StreamState) => void): void {
    this.state_listeners.add(listener);
    listener(this.state_);
  }

  subscribe(channel: string): void {
    if (this.channels.has(channel)) return;
    this.channels.add(channel);
    this.send({ op: 'subscribe', channel });
  }

  unsubscribe(channel: string): void {
    if (!this.channels.delete(channel)) return;
    this.send({ op: 'unsubscribe', channel });
  }

  // Authenticates this and every later connection (null: forget the token; the caller
  // unsubscribes the private channels).
  setToken(token: string | null): void {
    this.token = token;
    if (token) this.send({ op: 'auth', token });
  }

  private send(message: object): void {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
    }
  }

  private setState(state: StreamState): void {
    if (state === this.state_) return;
    this.state_ = state;
    for (const listener of this.state_listeners) listener(state);
  }

  private connect(): void {
    this.reconnect_timer = null;
    this.setState('connecting');
    let socket: WebSocket;
    try {
      socket = new WebSocket(this.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      this.backoff_ms = kBackoffFirstMs;
      // The server handles one connection's messages in order: auth comes before the
      // private subscriptions that need it.
      if (this.token) this.send({ op: 'auth', token: this.token });
      for (const channel of this.channels) this.send({ op: 'subscribe', channel });
      this.ping_timer = window.setInterval(() => this.send({ op: 'ping' }), kPingIntervalMs);
      this.setState('live');
    };
    socket.onmessage = (event: MessageEvent) => {
      if (typeof event.data !== 'string') return;
      let message: StreamMessage;
      try {
        message = JSON.parse(event.data) as StreamMessage;
      } catch {
        console.warn('ocx: a stream message that is not JSON', event.data);
        return;
      }
      for (const listener of this.listeners) {
        try {
          listener(message);
        } catch (e) {
          console.error('ocx: a stream listener failed', e);
        }
      }
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.ping_timer !== null) window.clearInterval(this.ping_timer);
      this.ping_timer = null;
      this.setState('offline');
      this.scheduleReconnect();
    };
    // An error is always followed by close, which reconnects.
    socket.onerror = () => undefined;
  }

  private scheduleReconnect(): void {
    if (this.reconnect_timer !== null) return;
    const delay = this.backoff_ms * (0.75 + Math.random() * 0.5);
    this.backoff_ms = Math.min(this.backoff_ms * 2, kBackoffMaxMs);
    this.reconnect_timer = window.setTimeout(() => this.connect(), delay);
  }

  private retryNow(): void {
    if (this.socket || this.reconnect_timer === null) return;
    window.clearTimeout(this.reconnect_timer);
    this.backoff_ms = kBackoffFirstMs;
    this.connect();
  }
}

export function streamUrl(): string {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/v1/stream`;
}
