// The dashboard's entry point: the hash router (#/markets, #/machines, #/me), the live
// status badge, and the pages. web/CONTRACT.md lists the element ids the tests rely on.

import './style.css';
import { byId } from './dom';
import { MachinesPage } from './machines';
import { MarketsPage } from './markets';
import { MePage } from './me';
import { Stream, streamUrl } from './stream';

const kPages = ['markets', 'machines', 'me'] as const;
type PageName = (typeof kPages)[number];

function currentPage(): PageName {
  const name = location.hash.replace(/^#\/?/, '').split(/[/?]/)[0] ?? '';
  return (kPages as readonly string[]).includes(name) ? (name as PageName) : 'markets';
}

function main(): void {
  const stream = new Stream(streamUrl());
  const status = byId('live-status');
  const labels = { live: 'live', connecting: 'connecting…', offline: 'offline' } as const;
  stream.onState((state) => {
    status.dataset['state'] = state;
    status.textContent = labels[state];
  });

  const markets = new MarketsPage(stream);
  const machines = new MachinesPage();
  const me = new MePage(stream);
  const markets_ready = markets.start();

  const route = () => {
    const page = currentPage();
    for (const name of kPages) byId(`page-${name}`).hidden = name !== page;
    for (const link of document.querySelectorAll<HTMLAnchorElement>('nav a')) {
      if (link.getAttribute('href') === `#/${page}`) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    document.title = `${page === 'me' ? 'Me' : page[0]!.toUpperCase() + page.slice(1)} · ocx`;
    if (page === 'machines') void markets_ready.then(() => machines.show(markets.getMarkets()));
  };
  window.addEventListener('hashchange', route);
  route();
  me.start();
  stream.start();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', main);
else main();
