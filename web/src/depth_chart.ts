// A hand-drawn depth chart on a <canvas>: cumulative quantity (y) by price (x), bids as a
// green step area falling to the left of the best bid, asks as a red one rising to the
// right of the best ask. Redrawn on every book change and on resize; prices are placed with
// Number() (drawing only; the tables keep the exact strings).

import type { Level } from './types';

const kBidLine = '#15803d';
const kBidFill = 'rgba(22, 163, 74, 0.16)';
const kAskLine = '#c2410c';
const kAskFill = 'rgba(234, 88, 12, 0.16)';
const kGrid = '#e5e7eb';
const kText = '#6b7280';
const kFont = '11px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

export class DepthChart {
  private readonly canvas: HTMLCanvasElement;
  private readonly tooltip: HTMLDivElement;
  private bids: Level[] = [];
  private asks: Level[] = [];
  // The last drawing's mapping, for the hover read-out.
  private layout: { x0: number; x1: number; p0: number; p1: number } | null = null;

  constructor(private readonly container: HTMLElement) {
    this.canvas = document.createElement('canvas');
    this.tooltip = document.createElement('div');
    this.tooltip.className = 'chart-tooltip';
    this.tooltip.hidden = true;
    container.append(this.canvas, this.tooltip);
    new ResizeObserver(() => this.draw()).observe(container);
    this.canvas.addEventListener('mousemove', (e) => this.hover(e));
    this.canvas.addEventListener('mouseleave', () => (this.tooltip.hidden = true));
  }

  // bids best (highest) first, asks best (lowest) first.
  set(bids: Level[], asks: Level[]): void {
    this.bids = bids;
    this.asks = asks;
    this.draw();
  }

  private draw(): void {
    const width = this.container.clientWidth;
    const height = this.container.clientHeight;
    if (width === 0 || height === 0) return; // Hidden page: drawn when shown.
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round(height * ratio);
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
    const ctx = this.canvas.getContext('2d');
    if (!ctx) return;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = kFont;

    const bids = cumulative(this.bids);
    const asks = cumulative(this.asks);
    if (bids.length === 0 && asks.length === 0) {
      this.layout = null;
      ctx.fillStyle = kText;
      ctx.textAlign = 'center';
      ctx.fillText('The book is empty.', width / 2, height / 2);
      return;
    }

    // Price range: both sides, padded so a single level is not on the edge.
    const prices = [...bids, ...asks].map((p) => p.price);
    let p0 = Math.min(...prices);
    let p1 = Math.max(...prices);
    const span = p1 - p0 || Math.max(p1 * 0.2, 1e-6);
    p0 -= span * 0.15;
    p1 += span * 0.15;
    const qmax = Math.max(bids.at(-1)?.total ?? 0, asks.at(-1)?.total ?? 0) * 1.1;

    const left = 8;
    const right = width - 44; // room for y labels
    const top = 10;
    const bottom = height - 22; // room for x labels
    const x = (price: number) => left + ((price - p0) / (p1 - p0)) * (right - left);
    const y = (qty: number) => bottom - (qty / qmax) * (bottom - top);
    this.layout = { x0: left, x1: right, p0, p1 };

    // Grid and labels.
    ctx.strokeStyle = kGrid;
    ctx.lineWidth = 1;
    ctx.fillStyle = kText;
    ctx.textAlign = 'left';
    ctx.textBaseline = 'middle';
    for (const q of niceTicks(0, qmax, 4)) {
      const yy = Math.round(y(q)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, yy);
      ctx.lineTo(right, yy);
      ctx.stroke();
      ctx.fillText(String(q), right + 6, yy);
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (const p of niceTicks(p0, p1, Math.max(2, Math.floor((right - left) / 90)))) {
      ctx.fillText(formatPrice(p), x(p), bottom + 6);
    }

    // Bids grow leftwards from the best bid, asks rightwards from the best ask: at each
    // further price the cumulative total steps up.
    const staircase = (levels: Point[], edge: number, line: string, fill: string): void => {
      if (levels.length === 0) return;
      ctx.beginPath();
      ctx.moveTo(x(levels[0]!.price), y(0));
      let last = 0;
      for (const level of levels) {
        ctx.lineTo(x(level.price), y(last));
        ctx.lineTo(x(level.price), y(level.total));
        last = level.total;
      }
      ctx.lineTo(edge, y(last));
      this.paint(ctx, line, fill, edge, y(0));
    };
    staircase(bids, left, kBidLine, kBidFill);
    staircase(asks, right, kAskLine, kAskFill);
    ctx.strokeStyle = '#9ca3af';
    ctx.beginPath();
    ctx.moveTo(left, Math.round(bottom) + 0.5);
    ctx.lineTo(right, Math.round(bottom) + 0.5);
    ctx.stroke();
  }

  // Strokes the current path, then closes it down to the axis and fills it.
  private paint(ctx: CanvasRenderingContext2D, line: string, fill: string, edge: number, base: number): void {
    ctx.strokeStyle = line;
    ctx.lineWidth = 2;
    ctx.stroke();
    ctx.lineTo(edge, base);
    ctx.closePath();
    ctx.fillStyle = fill;
    ctx.fill();
  }

  private hover(e: MouseEvent): void {
    if (!this.layout) return;
    const { x0, x1, p0, p1 } = this.layout;
    const rect = this.canvas.getBoundingClientRect();
    const px = e.clientX - rect.left;
    if (px < x0 || px > x1) {
      this.tooltip.hidden = true;
      return;
    }
    const price = p0 + ((px - x0) / (x1 - x0)) * (p1 - p0);
    // The cumulative quantity available at this price on the nearer side.
    const bids = cumulative(this.bids).filter((l) => l.price >= price);
    const asks = cumulative(this.asks).filter((l) => l.price <= price);
    let text: string;
    if (bids.length > 0) {
      text = `${bids.at(-1)!.total} bid at ≥ ${bids.at(-1)!.text}`;
    } else if (asks.length > 0) {
      text = `${asks.at(-1)!.total} offered at ≤ ${asks.at(-1)!.text}`;
    } else {
      this.tooltip.hidden = true;
      return;
    }
    this.tooltip.textContent = text;
    this.tooltip.hidden = false;
    this.tooltip.style.left = `${Math.min(px + 12, rect.width - this.tooltip.offsetWidth - 4)}px`;
    this.tooltip.style.top = `${e.clientY - rect.top + 12}px`;
  }
}

interface Point {
  price: number;
  text: string;
  total: number;
}

function cumulative(levels: Level[]): Point[] {
  let total = 0;
  return levels.map(([text, qty]) => {
    total += qty;
    return { price: Number(text), text, total };
  });
}

// About `count` round values covering [lo, hi].
function niceTicks(lo: number, hi: number, count: number): number[] {
  const span = hi - lo;
  if (!(span > 0)) return [];
  const raw = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => span / s <= count) ?? raw;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    ticks.push(Number(v.toPrecision(12)));
  }
  return ticks;
}

function formatPrice(p: number): string {
  return String(Number(p.toPrecision(6)));
}
