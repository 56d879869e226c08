// Trade prices over time, with lightweight-charts (an area series). lightweight-charts wants
// strictly increasing times in whole seconds: trades within one second become one point,
// the second's last price. Its time axis is UTC, so times are shifted into the browser's
// time zone (the library's documented way to show local time). The library's attribution
// logo (its licence asks for a link to tradingview.com) stays on.

import {
  AreaSeries,
  createChart,
  type IChartApi,
  type ISeriesApi,
  type UTCTimestamp,
} from 'lightweight-charts';
import type { Trade } from './types';

function localSeconds(micros: number): UTCTimestamp {
  const seconds = Math.floor(micros / 1_000_000);
  const offset_s = new Date(seconds * 1000).getTimezoneOffset() * 60;
  return (seconds - offset_s) as UTCTimestamp;
}

export class PriceChart {
  private readonly chart: IChartApi;
  private readonly series: ISeriesApi<'Area'>;
  private last_time: number | null = null;

  constructor(container: HTMLElement, private readonly on_empty: (empty: boolean) => void) {
    this.chart = createChart(container, {
      autoSize: true,
      layout: {
        background: { color: '#ffffff' },
        textColor: '#4b5563',
        fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
      },
      grid: { vertLines: { color: '#f1f3f5' }, horzLines: { color: '#f1f3f5' } },
      rightPriceScale: { borderColor: '#e5e7eb' },
      timeScale: { borderColor: '#e5e7eb', timeVisible: true, secondsVisible: true },
      handleScroll: { mouseWheel: false, pressedMouseMove: true, horzTouchDrag: true, vertTouchDrag: false },
      handleScale: { mouseWheel: false, pinch: true },
    });
    this.series = this.chart.addSeries(AreaSeries, {
      lineColor: '#2563eb',
      topColor: 'rgba(37, 99, 235, 0.25)',
      bottomColor: 'rgba(37, 99, 235, 0.02)',
      lineWidth: 2,
      lineType: 1, // steps: a price holds until the next trade
    });
  }

  // The market's tick ("0.0001") sets the price axis' precision.
  setTick(tick: string): void {
    const decimals = tick.includes('.') ? tick.split('.')[1]!.length : 0;
    this.series.applyOptions({
      priceFormat: { type: 'price', precision: decimals, minMove: Number(tick) },
    });
  }

  // All trades, oldest first.
  setTrades(trades: Trade[]): void {
    const points: { time: UTCTimestamp; value: number }[] = [];
    for (const t of trades) {
      const time = localSeconds(t.time);
      const value = Number(t.price);
      const last = points.at(-1);
      if (last && last.time >= time) {
        last.value = value; // same second (or out of order): keep the last price
      } else {
        points.push({ time, value });
      }
    }
    this.series.setData(points);
    this.last_time = points.at(-1)?.time ?? null;
    this.chart.timeScale().fitContent();
    this.on_empty(points.length === 0);
  }

  // One live trade (after those already set).
  addTrade(trade: Trade): void {
    let time: number = localSeconds(trade.time);
    // update() replaces the point of the same time; never go backwards.
    if (this.last_time !== null && time < this.last_time) time = this.last_time;
    const first = this.last_time === null;
    this.series.update({ time: time as UTCTimestamp, value: Number(trade.price) });
    this.last_time = time;
    if (first) {
      this.chart.timeScale().fitContent();
      this.on_empty(false);
    }
  }
}
