const UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses "10s", "500ms", "2m", "1h" or a bare number of seconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!match) return undefined;
  const ms = Number(match[1]) * UNITS_MS[match[2] ?? 's'];
  return Number.isFinite(ms) ? Math.round(ms) : undefined;
}
