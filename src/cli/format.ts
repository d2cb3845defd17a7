// Small text helpers for human output. Machine output is `--json`.

/** "1 secret", "3 secrets". */
export const counted = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;

/** 3725 -> "1h2m5s"; 0 -> "0s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return 'never expires';
  let s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const parts = [d ? `${d}d` : '', h ? `${h}h` : '', m ? `${m}m` : '', s || (!d && !h && !m) ? `${s}s` : ''];
  return parts.filter(Boolean).join('');
}

/** "2024-01-01T10:00:00.000Z (3m5s ago)" / "(in 1h)". */
export function formatTime(iso: string | undefined, now: number = Date.now()): string {
  if (!iso) return '-';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const delta = (t - now) / 1000;
  const rel = Math.abs(delta) < 1 ? 'now' : delta < 0 ? `${formatDuration(-delta)} ago` : `in ${formatDuration(delta)}`;
  return `${iso} (${rel})`;
}

/** Aligned "Key:  value" lines; multi-line values are indented under their value column. */
export function keyValues(rows: [string, string][], indent = ''): string {
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  return rows
    .map(([k, v]) => `${indent}${`${k}:`.padEnd(width)}${v.split('\n').join(`\n${indent}${' '.repeat(width)}`)}`)
    .join('\n');
}

/** "Error: ...\nFix:   ..." with the fix's continuation lines aligned. */
export function errorAndFix(error: string, fix: string | undefined, indent = '  '): string {
  const lines = [`${indent}Error: ${error.replace(/\s*\n\s*/g, ' ').trim()}`];
  if (fix) lines.push(`${indent}Fix:   ${fix.split('\n').join(`\n${indent}       `)}`);
  return lines.join('\n');
}
