// Exact arithmetic on the API's decimal strings ("0.045", "-12.5"): at most 6 fractional
// digits (docs/api.md), so a value is held as a BigInt of micro-units. Money is never
// parsed into a float for arithmetic; Number() is used only to place points on a chart.

const kFractionDigits = 6;
const kScale = 10n ** BigInt(kFractionDigits);
const kPattern = /^(-?)(\d+)(?:\.(\d{1,6}))?$/;

// "0.045" -> 45000n. Throws on text that is not a decimal of the API's form.
export function toMicros(text: string): bigint {
  const m = kPattern.exec(text.trim());
  if (!m) throw new Error(`not a decimal: ${JSON.stringify(text)}`);
  const [, sign, whole, fraction = ''] = m;
  const micros = BigInt(whole!) * kScale + BigInt(fraction.padEnd(kFractionDigits, '0'));
  return sign === '-' ? -micros : micros;
}

// 45000n -> "0.045" (no trailing zeros, as the exchange writes it).
export function fromMicros(micros: bigint): string {
  const negative = micros < 0n;
  const abs = negative ? -micros : micros;
  const whole = abs / kScale;
  const fraction = (abs % kScale).toString().padStart(kFractionDigits, '0').replace(/0+$/, '');
  return `${negative ? '-' : ''}${whole}${fraction ? '.' + fraction : ''}`;
}

export function compare(a: string, b: string): number {
  const x = toMicros(a);
  const y = toMicros(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

export function subtract(a: string, b: string): string {
  return fromMicros(toMicros(a) - toMicros(b));
}

export function isZero(a: string): boolean {
  return toMicros(a) === 0n;
}
