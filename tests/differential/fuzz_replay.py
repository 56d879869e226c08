#!/usr/bin/env python3
"""Differential fuzzer: `ocx replay` against reference_replay.py (RULEBOOK section 2).

Usage:
  python3 tests/differential/fuzz_replay.py --ocx build/src/cli/ocx --seeds 500 --commands 300
Options:
  --seed-start N      first seed (default 0); seeds are N .. N+seeds-1
  --check LEVEL       trades  : trade lines, byte for byte, in order (default)
                      events  : every event, in order; rejection reasons ignored,
                                runs of consecutive "expired" events compared as sets
                      strict  : every event line byte for byte
  --include-ambiguous also generate constructs whose meaning the rulebook leaves open
                      (market gtd orders whose expiry <= ts)
  --no-duplicate-ids  never reuse the id of an accepted order (ids of rejected
                      orders are still reused); avoids finding #1 again
  --keep-going        do not stop at the first failing seed
  --max-reports K     with --keep-going, shrink and print at most K failures (default 5)
  --jobs J            parallel workers (default: number of CPUs)
  --dump DIR          also write every generated stream to DIR/seed-N.jsonl
  --replay FILE       do not generate: compare (and shrink) this one stream
Exit status: 0 when all streams agree, 1 on a mismatch.

Streams are generated with the reference engine running alongside, so that the
generator knows the book: it aims fok quantities at exactly what is fillable (+-1,
+-lot), replaces live orders in every way (down/same/up, to 0, to non-multiples of
the lot, crossing prices, off-tick, invalid), cancels live/filled/unknown ids, etc.
"""
import argparse
import concurrent.futures
import json
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_replay as ref  # noqa: E402

TICKS = ['0.0001', '0.0001', '0.0001', '0.01', '0.005', '1', '0.000001', '0.25']


# ----------------------------------------------------------------------------
# generator
# ----------------------------------------------------------------------------
class Gen:
    def __init__(self, seed, ncmd, include_ambiguous=False, dup_ids=True):
        self.r = random.Random(seed)
        r = self.r
        self.ncmd = ncmd
        self.amb = include_ambiguous
        self.dup_ids = dup_ids
        self.tick_s = r.choice(TICKS)
        self.tick = ref.tick_to_micro(self.tick_s)
        self.accounts = ['a%d' % i for i in range(r.choice([1, 2, 2, 3, 3, 4, 6]))]
        # a tiny band of price levels; sometimes wider
        self.base = r.choice([1, 1, 2, 5, 100, 550])   # in ticks
        self.width = r.choice([1, 2, 3, 3, 4, 6, 10])
        self.eng = ref.Engine(self.tick)
        self.next_id = 1
        self.all_ids = []       # every id used in a "new"
        self.rejected_ids = []  # ids whose "new" was rejected
        self.accepted_ids = set()
        self.lines = []
        self.lot_weights = r.choice([[1], [1, 2], [1, 2, 3, 4, 5], [2, 3, 4, 5], [4]])
        self.qmax = r.choice([3, 5, 8, 12, 30])
        # per-stream regime: how much rests vs. takes
        self.limit_tifs = (['gtc'] * r.choice([2, 4, 8]) + ['ioc'] * r.choice([1, 2]) +
                           ['fok'] * r.choice([1, 2, 3]) + ['gtd'] * r.choice([1, 2, 4]))
        self.p_market = r.choice([0.05, 0.12, 0.2])
        self.p_aim = r.choice([0.15, 0.3, 0.5])
        self.spread = r.choice([0, 0, 1, 2, 3])   # sells priced this many ticks higher
        self.p_drain = r.choice([0.0, 0.002, 0.01])
        self.p_bad_qty = r.choice([0.01, 0.05])
        self.exp_scale = r.choice([1, 1, 4])

    # --- formatting -------------------------------------------------------
    def fmt(self, micro):
        """A price string for micro-credits, sometimes with redundant zeros."""
        s = ref.fmt_price(micro)
        r = self.r
        if r.random() < 0.15:
            if '.' in s:
                frac = len(s.split('.')[1])
                if frac < 6:
                    s += '0' * r.randint(1, 6 - frac)
            else:
                s += '.' + '0' * r.randint(1, 6)
        return s

    def level(self, side=None):
        k = self.base + self.r.randrange(self.width)
        if side == 'sell':
            k += self.spread
        return k * self.tick

    def price(self, side=None):
        """Mostly valid prices in the band; sometimes every kind of invalid one."""
        r = self.r
        x = r.random()
        if x < 0.90:
            return self.fmt(self.level(side))
        if x < 0.94 and self.tick > 1:
            return self.fmt(self.level() + r.randrange(1, self.tick))   # off tick
        if x < 0.96:
            return r.choice(['0', '0.0', '-' + ref.fmt_price(self.level())])
        if x < 0.975:
            s = ref.fmt_price(self.level())                          # 7+ decimals
            s = s + '0000000' if '.' in s else s + '.0000000'
            return r.choice(['0.0000001', s])
        if x < 0.98:
            return r.choice(['1.', '.5', '+1', '1e2', ' 1', '0x10'])      # not decimals
        if x < 0.99:
            # huge but representable / not representable as int64 micro
            t = self.tick
            mx = ref.INT64_MAX // t * t
            return r.choice([ref.fmt_price(mx), ref.fmt_price(mx + t)])
        return self.fmt(self.level())

    def qty(self, lot=1):
        r = self.r
        x = r.random()
        if x < 1 - 2 * self.p_bad_qty:
            return lot * r.randint(1, max(1, self.qmax // lot))
        if x < 1 - self.p_bad_qty:
            return lot * r.randint(1, max(1, self.qmax // lot)) + r.randint(1, lot)  # maybe non-multiple
        return r.choice([0, -1, 1_000_000, 1_000_001, 999_999, 1_000_000 - 1_000_000 % lot])

    # --- state queries ----------------------------------------------------
    def live(self):
        return list(self.eng.book)

    def best(self, side):
        prices = [o.price for o in self.eng.book if o.side == side]
        if not prices:
            return None
        return min(prices) if side == 'sell' else max(prices)

    # --- commands ---------------------------------------------------------
    def add_ts(self, cmd):
        r = self.r
        if r.random() < 0.3:
            cmd['ts'] = self.eng.now + r.choice([0, 0, 1, 1, 2, 3, 5])
        return cmd

    def gen_new(self):
        r = self.r
        oid = self.next_id
        reusable = [i for i in self.rejected_ids if i not in self.accepted_ids]
        if reusable and r.random() < 0.03:
            oid = r.choice(reusable)                   # reuse a rejected id
        elif self.all_ids and r.random() < 0.02 and self.dup_ids:
            oid = r.choice(self.all_ids)               # duplicate id
        else:
            self.next_id += 1
        side = r.choice(['buy', 'sell'])
        acct = r.choice(self.accounts)
        typ = 'market' if r.random() < self.p_market else 'limit'
        if typ == 'market':
            tif = r.choice(['ioc', 'ioc', 'fok', 'fok', 'gtc'] + (['gtd'] if self.amb else []))
        else:
            tif = r.choice(self.limit_tifs)
        c = {'op': 'new', 'id': oid, 'account': acct, 'side': side, 'type': typ, 'tif': tif}
        if r.random() < 0.03 and tif == 'gtc':
            del c['tif']                                 # default tif
        lot = 1
        if side == 'buy' and r.random() < 0.6:
            lot = r.choice(self.lot_weights)
            if r.random() < 0.02:
                lot = r.choice([0, -1])
            c['lot'] = lot
        elif side == 'sell' and r.random() < 0.03:
            c['lot'] = r.choice([1, 1, 2])
        if typ == 'limit':
            if r.random() < self.p_aim:
                # aim at / through the opposite best
                b = self.best('sell' if side == 'buy' else 'buy')
                if b is not None:
                    k = r.choice([0, 0, 1, 2])
                    p = b + k * self.tick if side == 'buy' else b - k * self.tick
                    c['price'] = self.fmt(max(p, self.tick))
                else:
                    c['price'] = self.price(side)
            else:
                c['price'] = self.price(side)
        self.add_ts(c)
        ts = c.get('ts', self.eng.now)
        if tif == 'gtd':
            c['expiry'] = ts + r.choice([-1, 0, 1, 1, 2, 2, 3, 4, 6, 10]) * self.exp_scale
        # quantity: fok gets aimed at exactly what is fillable
        q = self.qty(lot if lot > 0 else 1)
        if tif == 'fok' and r.random() < 0.8 and lot > 0:
            probe = ref.Order()
            probe.id, probe.account, probe.side, probe.type = oid, acct, side, typ
            probe.price = ref.parse_price(c.get('price', '1'))
            probe.lot = lot
            probe.rem = 1_000_000 // lot * lot
            if probe.price is not None and probe.price > 0 or typ == 'market':
                f = self.eng.dry_fill(probe)
                cands = [f, f, f + lot, f - lot, f + 1, f - 1]
                cands = [x for x in cands if x > 0]
                if cands:
                    q = r.choice(cands)
        c['qty'] = q
        return c

    def gen_cancel(self):
        r = self.r
        x = r.random()
        live = self.live()
        if live and x < 0.6:
            oid = r.choice(live).id
        elif self.all_ids and x < 0.9:
            oid = r.choice(self.all_ids)
        else:
            oid = r.choice([self.next_id + 1000, 0, -5])
        return self.add_ts({'op': 'cancel', 'id': oid})

    def gen_replace(self):
        r = self.r
        live = self.live()
        if live and r.random() < 0.85:
            o = r.choice(live)
        else:
            o = None
        oid = o.id if o else (r.choice(self.all_ids) if self.all_ids and r.random() < 0.7
                              else self.next_id + 1000)
        lot = o.lot if o else 1
        rem = o.rem if o else 3
        c = {'op': 'replace', 'id': oid}
        # quantity
        qk = r.random()
        if qk < 0.25:
            pass                                   # no qty
        else:
            c['qty'] = r.choice([
                0, 0,
                max(rem - lot, 0), max(rem - lot * r.randint(1, 3), lot), rem, rem,
                rem + lot, rem + lot * r.randint(1, 3),
                rem + 1, rem - 1, lot * r.randint(1, 4) + 1,
                -lot, 1_000_000, 1_000_001, 1_000_000 // lot * lot,
            ])
        # price
        pk = r.random()
        if 'qty' not in c or pk < 0.6:
            if o is not None:
                opp_best = self.best('sell' if o.side == 'buy' else 'buy')
                choices = [
                    o.price, o.price, o.price + self.tick, max(o.price - self.tick, self.tick),
                    self.level(o.side),
                ]
                if opp_best is not None:
                    choices += [opp_best, opp_best]
                p = self.fmt(r.choice(choices))
                if r.random() < 0.08:
                    p = self.price()                 # maybe invalid
                c['price'] = p
            else:
                c['price'] = self.price()
        return self.add_ts(c)

    def gen_time(self):
        return {'op': 'time', 'ts': self.eng.now + self.r.choice([0, 1, 1, 2, 3, 5, 10])}

    def generate(self):
        r = self.r
        weights = [('new', r.choice([45, 55, 65])), ('cancel', r.choice([4, 12])), ('replace', r.choice([15, 25])),
                   ('time', 6)]
        names = [w[0] for w in weights]
        ws = [w[1] for w in weights]
        for _ in range(self.ncmd):
            kind = r.choices(names, ws)[0]
            c = getattr(self, 'gen_' + kind)()
            line = json.dumps(c, separators=(',', ':'))
            self.lines.append(line)
            # feed the reference so the generator knows the state
            before = len(self.eng.out)
            try:
                self.eng.command(json.loads(line))
            except ref.Malformed:
                pass
            self.eng.check_invariant()
            if kind == 'new':
                ids = c['id']
                evs = self.eng.out[before:]
                if any(e['type'] == 'rejected' and e['id'] == ids for e in evs):
                    self.rejected_ids.append(ids)
                else:
                    self.all_ids.append(ids)
                    self.accepted_ids.add(ids)
            # occasionally drain a side to get empty books for market orders
            if r.random() < self.p_drain:
                for o in self.live():
                    cl = json.dumps({'op': 'cancel', 'id': o.id}, separators=(',', ':'))
                    self.lines.append(cl)
                    self.eng.command(json.loads(cl))
        return self.tick_s, self.lines


# ----------------------------------------------------------------------------
# running and comparing
# ----------------------------------------------------------------------------
def run_ocx(ocx, tick, lines):
    with tempfile.NamedTemporaryFile('w', suffix='.jsonl', delete=False) as f:
        f.write('\n'.join(lines) + '\n')
        path = f.name
    try:
        p = subprocess.run([ocx, 'replay', '--tick', tick, path], capture_output=True,
                           text=True, timeout=120)
    finally:
        os.unlink(path)
    if p.returncode != 0:
        return ['<exit status %d> %s' % (p.returncode, p.stderr.strip()[-500:])]
    return [l for l in p.stdout.split('\n') if l.strip()]


def run_ref(tick, lines):
    return [ref.dumps(e) for e in ref.run_lines(lines, ref.tick_to_micro(tick))]


def normalise(out_lines, level):
    if level == 'strict':
        return list(out_lines)
    if level == 'trades':
        return [l for l in out_lines if '"type":"trade"' in l]
    res = []
    run = []
    for l in out_lines:
        try:
            ev = json.loads(l)
        except ValueError:
            res.append(('unparsable', l))
            continue
        if ev.get('type') == 'rejected':
            ev.pop('reason', None)
        if ev.get('type') == 'expired':
            run.append(json.dumps(ev, sort_keys=True))
            continue
        if run:
            res.append(('expired-set', tuple(sorted(run))))
            run = []
        res.append(json.dumps(ev, sort_keys=True))
    if run:
        res.append(('expired-set', tuple(sorted(run))))
    return res


def differs(ocx, tick, lines, level):
    a = run_ocx(ocx, tick, lines)
    b = run_ref(tick, lines)
    return normalise(a, level) != normalise(b, level), a, b


def ddmin(lines, fails):
    """Classic delta debugging: a 1-minimal sublist of lines that still fails."""
    n = 2
    while len(lines) >= 2:
        chunk = max(1, len(lines) // n)
        subsets = [lines[i:i + chunk] for i in range(0, len(lines), chunk)]
        reduced = False
        for i in range(len(subsets)):
            complement = [l for j, s in enumerate(subsets) if j != i for l in s]
            if fails(subsets[i]):
                lines, n, reduced = subsets[i], 2, True
                break
            if fails(complement):
                lines, n, reduced = complement, max(n - 1, 2), True
                break
        if not reduced:
            if n >= len(lines):
                break
            n = min(len(lines), n * 2)
    return lines


def check_seed(args_tuple):
    ocx, seed, ncmd, level, amb, dup, dump = args_tuple
    tick, lines = Gen(seed, ncmd, amb, dup).generate()
    if dump:
        with open(os.path.join(dump, 'seed-%d.jsonl' % seed), 'w') as f:
            f.write('# tick %s\n' % tick + '\n'.join(lines) + '\n')
    bad, _, _ = differs(ocx, tick, lines, level)
    return seed, tick, len(lines), bad, lines


def report(ocx, seed, tick, lines, level):
    print('=' * 78)
    print('MISMATCH  seed=%s tick=%s (%d lines); shrinking...' % (seed, tick, len(lines)),
          flush=True)
    small = ddmin(lines, lambda ls: differs(ocx, tick, ls, level)[0])
    _, a, b = differs(ocx, tick, small, level)
    print('minimal stream (%d lines), run with --tick %s:' % (len(small), tick))
    for l in small:
        print('  ' + l)
    print('ocx replay output:')
    for l in a:
        print('  ' + l)
    print('reference output:')
    for l in b:
        print('  ' + l)
    na, nb = normalise(a, level), normalise(b, level)
    print('compared (%s): ocx=%s' % (level, na))
    print('               ref=%s' % (nb,), flush=True)
    return small


def snapshot(ocx):
    """Copy the binary to a private temp file so that a rebuild under us cannot
    change it in the middle of a run (retries while it is being written)."""
    import hashlib
    import shutil
    import time
    d = tempfile.mkdtemp(prefix='ocx-fuzz-')
    dst = os.path.join(d, 'ocx')
    for attempt in range(60):
        try:
            h1 = hashlib.sha256(open(ocx, 'rb').read()).hexdigest()
            shutil.copyfile(ocx, dst)
            os.chmod(dst, 0o755)
            h2 = hashlib.sha256(open(dst, 'rb').read()).hexdigest()
            if h1 == h2 and subprocess.run([dst, 'replay', '--help'], capture_output=True,
                                           timeout=30).returncode == 0:
                print('using %s (sha256 %s, mtime %s)' % (
                    ocx, h1[:16], time.ctime(os.path.getmtime(ocx))), flush=True)
                return dst
        except OSError:
            pass
        time.sleep(5)
    sys.exit('cannot get a working copy of %s' % ocx)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--ocx', default='build/src/cli/ocx')
    ap.add_argument('--seeds', type=int, default=200)
    ap.add_argument('--seed-start', type=int, default=0)
    ap.add_argument('--commands', type=int, default=300)
    ap.add_argument('--check', choices=['trades', 'events', 'strict'], default='trades')
    ap.add_argument('--include-ambiguous', action='store_true')
    ap.add_argument('--keep-going', action='store_true')
    ap.add_argument('--no-duplicate-ids', action='store_true',
                    help='never reuse the id of an accepted order in a "new"')
    ap.add_argument('--max-reports', type=int, default=5)
    ap.add_argument('--jobs', type=int, default=os.cpu_count() or 1)
    ap.add_argument('--dump')
    ap.add_argument('--replay', help='compare and shrink this one stream (tick from --tick)')
    ap.add_argument('--tick', default='0.0001')
    a = ap.parse_args()
    a.ocx = snapshot(a.ocx)

    if a.replay:
        lines = [l for l in open(a.replay).read().split('\n') if l.strip() and not l.startswith('#')]
        bad, _, _ = differs(a.ocx, a.tick, lines, a.check)
        if not bad:
            print('agree (%d lines)' % len(lines))
            return 0
        report(a.ocx, a.replay, a.tick, lines, a.check)
        return 1

    if a.dump:
        os.makedirs(a.dump, exist_ok=True)
    seeds = range(a.seed_start, a.seed_start + a.seeds)
    failures = []
    ncmds = 0
    done = 0
    work = [(a.ocx, s, a.commands, a.check, a.include_ambiguous, not a.no_duplicate_ids, a.dump)
            for s in seeds]
    with concurrent.futures.ProcessPoolExecutor(max_workers=a.jobs) as ex:
        for seed, tick, n, bad, lines in ex.map(check_seed, work, chunksize=4):
            done += 1
            ncmds += n
            if bad:
                failures.append((seed, tick, lines))
                if not a.keep_going:
                    ex.shutdown(wait=True, cancel_futures=True)
                    break
    reported = 0
    for seed, tick, lines in failures:
        if reported >= a.max_reports:
            break
        report(a.ocx, seed, tick, lines, a.check)
        reported += 1
    print('%d streams, %d commands compared (check=%s): %d mismatching%s' % (
        done, ncmds, a.check, len(failures),
        (' (seeds %s)' % ' '.join(str(f[0]) for f in failures[:50])) if failures else ''))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
