#!/usr/bin/env python3
"""Reference implementation of RULEBOOK section 2 (one spot market) for `ocx replay`.

Deliberately simple and slow: the book is a plain list, re-sorted whenever it is
walked.  Prices are integer micro-credits (Python int), never floats.  Standard
library only.

Usage:  python3 reference_replay.py FILE [--tick T]        (FILE '-' = stdin)

Output: one JSON event a line, in the same shapes as `ocx replay`:
  {"type":"accepted","id":I,"side":S[,"price":P],"qty":Q}
  {"type":"trade","taker":T,"maker":M,"price":"P","qty":Q}
  {"type":"cancelled","id":I,"qty":REMAINING,"reason":R}   R: requested|unfilled|self_trade|replaced_to_zero
  {"type":"expired","id":I,"qty":REMAINING}
  {"type":"replaced","id":I,"price":P,"qty":Q,"priority":"kept"|"lost"}
  {"type":"rejected","id":I,"op":OP,"reason":R}
Only the trade lines are meant to be compared byte for byte; for the other events
the differential fuzzer compares a normalised form (reasons dropped).

INTERPRETATIONS (where RULEBOOK section 2 / the brief leave room)
-----------------------------------------------------------------
 1. Matching walk.  The incoming order walks the opposite side in price-time order
    (best price, then earliest entry).  For each resting order that crosses:
      a. same account  -> the resting order is cancelled ("self_trade"), continue;
         (this check comes before the lot check, per the rulebook);
      b. fill = min(incoming.rem, resting.rem) rounded down to the BUY's lot;
         fill == 0 -> the pair is skipped (neither is cancelled), continue;
      c. else trade at the resting order's price.
    The walk stops as soon as the incoming order is filled (so same-account orders
    behind the point where it is filled are NOT cancelled) or nothing more crosses.
 2. fok: a dry run of exactly that walk that ignores (does not cancel) same-account
    orders.  It passes only if the dry run fills the whole quantity; otherwise the
    order is rejected, nothing is cancelled and no "accepted" is printed.  The rule
    applies to market fok orders as well (they then cross everything).
 3. Market orders ignore any "price" field; their remainder is cancelled
    ("unfilled") whatever the tif (gtc/ioc/gtd).  A market gtd order is still
    subject to the "expiry <= current ts is rejected" rule (the brief states it for
    every gtd order) -- see the report: the engine does not do this.
 4. "tif" missing -> gtc (the example file has such a line).
 5. "lot" is a buy-only concept.  A lot must be a positive integer; on a sell only
    lot 1 (i.e. the default) is accepted, any other value is rejected.
 6. Replace:
      - only a resting order can be replaced; otherwise rejected (unknown order);
      - omitted price / qty mean "unchanged" (qty = the current remaining);
      - all supplied fields are validated first (price: positive, <= 6 decimals,
        on tick; qty: integer in 0..1,000,000; qty a multiple of the lot);  an
        invalid field rejects the whole replace, even when qty is 0;
      - then qty 0 cancels ("replaced_to_zero");
      - same price (numerically; "0.50" == "0.5") and new qty <= remaining keeps
        time priority (equal qty at equal price is a no-op that keeps priority);
      - otherwise the order leaves the book and is re-entered as a NEW incoming
        gtc limit order: same id, account, side, lot; new timestamp for priority;
        it may trade at once (incl. self-trade cancels).  Literal reading of
        "enters again as a new incoming gtc limit order": a gtd order that loses
        priority becomes gtc and its expiry no longer applies.
 7. Time.  A command's optional "ts" (non-decreasing) is applied before the command
    itself: every resting gtd order with expiry <= ts is expired first, in order of
    (expiry, id) -- the rulebook gives no order; this is the one `ocx` uses, adopted
    so that --check strict can compare byte for byte.  Commands without "ts" run at the last ts (initially
    0).  A ts that goes backwards makes the line malformed (skipped, no effect).  A
    well-formed command advances time even if it is then rejected.
 8. ids.  A "new" whose id belongs to an order that was accepted before (resting or
    finished) is rejected; the id of a rejected order may be used again.
 9. Prices: a string that is not -?DIGITS[.DIGITS] ("1.", ".5", "+1", "1e2") makes
    the line malformed (skipped, like `ocx`).  A decimal is rejected unless it has
    at most 6 fractional digits, is > 0, fits int64 micro-credits and is a
    positive multiple of the tick.
10. qty: a JSON integer 1..1,000,000 (on replace 0..1,000,000); otherwise rejected.
11. Validation order for new (only matters for reason strings):
    duplicate id, price, tick, qty, lot, lot multiple, gtd expiry, fok.
"""
import json
import re
import sys

MICRO = 1_000_000
MAX_QTY = 1_000_000
INT64_MAX = 2**63 - 1
PRICE_RE = re.compile(r'^(-?)(\d+)(?:\.(\d+))?$')


def parse_price(s):
    """Decimal string -> int micro-credits, or None if not a valid decimal."""
    if isinstance(s, bool):
        return None
    if isinstance(s, int):          # lenient: a bare JSON integer
        s = str(s)
    if not isinstance(s, str):
        return None
    m = PRICE_RE.match(s)
    if not m:
        return None
    sign, ip, fp = m.group(1), m.group(2), m.group(3) or ''
    if len(fp) > 6:
        return None
    v = int(ip) * MICRO + int((fp + '000000')[:6])
    return -v if sign else v


def fmt_price(micro):
    ip, fp = divmod(micro, MICRO)
    if fp == 0:
        return str(ip)
    return '%d.%s' % (ip, ('%06d' % fp).rstrip('0'))


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


class Malformed(Exception):
    pass


def check_price_syntax(raw):
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise Malformed('"price" must be a decimal string')
    if isinstance(raw, str) and not PRICE_RE.match(raw):
        raise Malformed('"price" is not a decimal number: ' + raw)


class Order:
    __slots__ = ('id', 'account', 'side', 'type', 'tif', 'price', 'rem', 'lot',
                 'expiry', 'seq')

    def __repr__(self):
        return 'Order(%r)' % ({k: getattr(self, k) for k in self.__slots__},)


class Engine:
    def __init__(self, tick_micro=100):
        self.tick = tick_micro
        self.book = []          # resting orders, any order; sorted when walked
        self.used_ids = set()   # ids of orders ever accepted
        self.now = 0
        self.seq = 0
        self.out = []           # list of event dicts

    # ---------------- helpers ----------------
    def emit(self, **ev):
        self.out.append(ev)

    def resting(self, oid):
        for o in self.book:
            if o.id == oid:
                return o
        return None

    def next_seq(self):
        self.seq += 1
        return self.seq

    @staticmethod
    def crosses(incoming, resting):
        if incoming.type == 'market':
            return True
        if incoming.side == 'buy':
            return resting.price <= incoming.price
        return resting.price >= incoming.price

    def opposite_in_priority(self, incoming):
        side = 'sell' if incoming.side == 'buy' else 'buy'
        opp = [o for o in self.book if o.side == side]
        if side == 'sell':
            opp.sort(key=lambda o: (o.price, o.seq))
        else:
            opp.sort(key=lambda o: (-o.price, o.seq))
        return opp

    @staticmethod
    def buy_lot(a, b):
        return a.lot if a.side == 'buy' else b.lot

    def dry_fill(self, incoming):
        """What matching would fill, counting only other accounts (fok check)."""
        rem = incoming.rem
        for r in self.opposite_in_priority(incoming):
            if rem == 0 or not self.crosses(incoming, r):
                break
            if r.account == incoming.account:
                continue
            lot = self.buy_lot(incoming, r)
            rem -= min(rem, r.rem) // lot * lot
        return incoming.rem - rem

    def match(self, incoming):
        for r in self.opposite_in_priority(incoming):
            if incoming.rem == 0 or not self.crosses(incoming, r):
                break
            if r.account == incoming.account:
                self.book.remove(r)
                self.emit(type='cancelled', id=r.id, qty=r.rem, reason='self_trade')
                continue
            lot = self.buy_lot(incoming, r)
            fill = min(incoming.rem, r.rem) // lot * lot
            if fill == 0:
                continue
            self.emit(type='trade', taker=incoming.id, maker=r.id,
                      price=fmt_price(r.price), qty=fill)
            incoming.rem -= fill
            r.rem -= fill
            if r.rem == 0:
                self.book.remove(r)

    def after_match(self, o):
        if o.rem == 0:
            return
        if o.type == 'limit' and o.tif in ('gtc', 'gtd'):
            self.book.append(o)
        else:  # ioc, market (any tif); fok never gets here with a remainder
            self.emit(type='cancelled', id=o.id, qty=o.rem, reason='unfilled')

    def advance(self, ts):
        if ts is None:
            return
        if not is_int(ts):
            raise Malformed('"ts" must be an integer')
        if ts < self.now:
            raise Malformed('"ts" goes backwards')
        self.now = ts
        due = [o for o in self.book if o.tif == 'gtd' and o.expiry <= ts]
        due.sort(key=lambda o: (o.expiry, o.id))
        for o in due:
            self.book.remove(o)
            self.emit(type='expired', id=o.id, qty=o.rem)

    def valid_price(self, raw):
        """-> (micro, None) or (None, reason)."""
        p = parse_price(raw)
        if p is None or p <= 0 or p > INT64_MAX:
            return None, 'invalid_price'
        if p % self.tick != 0:
            return None, 'off_tick'
        return p, None

    def check_invariant(self):
        """Rulebook: "no two resting orders could trade with each other"."""
        for b in self.book:
            if b.side != 'buy':
                continue
            for s in self.book:
                if (s.side == 'sell' and s.price <= b.price and s.account != b.account
                        and min(b.rem, s.rem) >= b.lot):
                    raise AssertionError('resting %r and %r could trade' % (b, s))
            assert b.rem > 0 and b.rem % b.lot == 0, b

    # ---------------- commands ----------------
    def command(self, cmd):
        if not isinstance(cmd, dict):
            raise Malformed('not a JSON object')
        op = cmd.get('op')
        if op == 'new':
            self.cmd_new(cmd)
        elif op == 'cancel':
            self.cmd_cancel(cmd)
        elif op == 'replace':
            self.cmd_replace(cmd)
        elif op == 'time':
            if 'ts' not in cmd:
                raise Malformed('time needs ts')
            self.advance(cmd['ts'])
        else:
            raise Malformed('unknown op')

    def reject(self, oid, op, reason):
        self.emit(type='rejected', id=oid, op=op, reason=reason)

    def cmd_new(self, c):
        for k in ('id', 'account', 'side', 'type', 'qty'):
            if k not in c:
                raise Malformed('missing ' + k)
        oid = c['id']
        if not is_int(oid) or not isinstance(c['account'], str):
            raise Malformed('bad id/account')
        if c['side'] not in ('buy', 'sell') or c['type'] not in ('limit', 'market'):
            raise Malformed('bad side/type')
        tif = c.get('tif', 'gtc')
        if tif not in ('gtc', 'ioc', 'fok', 'gtd'):
            raise Malformed('bad tif')
        if c['type'] == 'limit' and 'price' not in c:
            raise Malformed('limit needs price')
        if c['type'] == 'limit':
            check_price_syntax(c['price'])
        self.advance(c.get('ts'))

        if oid in self.used_ids:
            return self.reject(oid, 'new', 'duplicate_id')
        o = Order()
        o.id, o.account, o.side, o.type, o.tif = oid, c['account'], c['side'], c['type'], tif
        o.price = None
        if o.type == 'limit':
            o.price, why = self.valid_price(c['price'])
            if why:
                return self.reject(oid, 'new', why)
        q = c['qty']
        if not is_int(q) or q <= 0 or q > MAX_QTY:
            return self.reject(oid, 'new', 'invalid_quantity')
        lot = c.get('lot', 1)
        if not is_int(lot) or lot <= 0 or (o.side == 'sell' and lot != 1):
            return self.reject(oid, 'new', 'invalid_lot')
        if q % lot != 0:
            return self.reject(oid, 'new', 'lot_mismatch')
        o.rem, o.lot = q, lot
        o.expiry = None
        if tif == 'gtd':
            if 'expiry' not in c or not is_int(c['expiry']):
                return self.reject(oid, 'new', 'missing_expiry')
            o.expiry = c['expiry']
            if o.expiry <= self.now:
                return self.reject(oid, 'new', 'expiry_in_past')
        if tif == 'fok' and self.dry_fill(o) < o.rem:
            return self.reject(oid, 'new', 'fok_unfillable')

        self.used_ids.add(oid)
        o.seq = self.next_seq()
        ev = dict(type='accepted', id=oid, side=o.side)
        if o.type == 'limit':
            ev['price'] = fmt_price(o.price)
        ev['qty'] = o.rem
        self.emit(**ev)
        self.match(o)
        self.after_match(o)

    def cmd_cancel(self, c):
        if 'id' not in c or not is_int(c['id']):
            raise Malformed('cancel needs id')
        self.advance(c.get('ts'))
        o = self.resting(c['id'])
        if o is None:
            return self.reject(c['id'], 'cancel', 'unknown_order')
        self.book.remove(o)
        self.emit(type='cancelled', id=o.id, qty=o.rem, reason='requested')

    def cmd_replace(self, c):
        if 'id' not in c or not is_int(c['id']):
            raise Malformed('replace needs id')
        if 'price' not in c and 'qty' not in c:
            raise Malformed('replace needs price and/or qty')
        if 'price' in c:
            check_price_syntax(c['price'])
        self.advance(c.get('ts'))
        oid = c['id']
        o = self.resting(oid)
        if o is None:
            return self.reject(oid, 'replace', 'unknown_order')
        new_price = o.price
        if 'price' in c:
            new_price, why = self.valid_price(c['price'])
            if why:
                return self.reject(oid, 'replace', why)
        new_qty = o.rem
        if 'qty' in c:
            new_qty = c['qty']
            if not is_int(new_qty) or new_qty < 0 or new_qty > MAX_QTY:
                return self.reject(oid, 'replace', 'invalid_quantity')
            if new_qty % o.lot != 0:
                return self.reject(oid, 'replace', 'lot_mismatch')
        if new_qty == 0:
            self.book.remove(o)
            self.emit(type='cancelled', id=oid, qty=o.rem, reason='replaced_to_zero')
            return
        if new_price == o.price and new_qty <= o.rem:
            o.rem = new_qty
            self.emit(type='replaced', id=oid, price=fmt_price(o.price), qty=o.rem,
                      priority='kept')
            return
        # loses priority: leave the book, re-enter as a new incoming gtc limit order
        self.book.remove(o)
        o.price, o.rem = new_price, new_qty
        o.type, o.tif, o.expiry = 'limit', 'gtc', None
        o.seq = self.next_seq()
        self.emit(type='replaced', id=oid, price=fmt_price(o.price), qty=o.rem,
                  priority='lost')
        self.match(o)
        self.after_match(o)


def tick_to_micro(s):
    t = parse_price(s)
    if t is None or t <= 0:
        raise SystemExit('bad --tick %r' % (s,))
    return t


def run_lines(lines, tick_micro=100, errors=None):
    """Run replay lines (str) through a fresh engine; return list of event dicts."""
    e = Engine(tick_micro)
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            cmd = json.loads(line)
        except ValueError:
            if errors is not None:
                errors.append('line %d: not valid JSON' % n)
            continue
        mark = len(e.out)
        saved_now = e.now
        try:
            e.command(cmd)
        except Malformed as ex:
            del e.out[mark:]
            e.now = saved_now
            if errors is not None:
                errors.append('line %d: %s' % (n, ex))
    return e.out


def dumps(ev):
    return json.dumps(ev, separators=(',', ':'))


def main(argv):
    args = list(argv)
    tick = '0.0001'
    if '--tick' in args:
        i = args.index('--tick')
        tick = args[i + 1]
        del args[i:i + 2]
    if len(args) != 1:
        sys.stderr.write('usage: reference_replay.py FILE [--tick T]   (FILE "-" = stdin)\n')
        return 2
    f = sys.stdin if args[0] == '-' else open(args[0])
    lines = f.read().split('\n')
    errs = []
    for ev in run_lines(lines, tick_to_micro(tick), errs):
        print(dumps(ev))
    for m in errs:
        sys.stderr.write(m + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
