/** Parsing of durations given as options (`maxAge: '30d'`) and on the command line. */
import { InvalidOptionError } from '../errors/index.js';

const DURATION_UNITS: Record<string, number> = {
  ms: 1, s: 1e3, sec: 1e3, m: 60e3, min: 60e3, h: 3600e3, hr: 3600e3, d: 86400e3, day: 86400e3, days: 86400e3, w: 7 * 86400e3, week: 7 * 86400e3, weeks: 7 * 86400e3,
};

/**
 * Parses a duration: ms as a number, or a number with a unit: `500ms`,
 * `45s`, `90m`, `12h`, `30d`, `2w` (several parts add up: `1d12h`).
 */
export function parseDuration(text: number | string, where = 'duration'): number {
  if (typeof text === 'number') {
    if (Number.isFinite(text) && text >= 0) return text;
  } else if (typeof text === 'string' && text.trim() !== '') {
    let ms = 0;
    let rest = text.trim().toLowerCase();
    while (rest.length) {
      const m = /^(\d+(?:\.\d+)?)\s*([a-z]+)\s*/.exec(rest);
      const mult = m ? DURATION_UNITS[m[2]!] : undefined;
      if (!m || mult === undefined) {
        ms = NaN;
        break;
      }
      ms += Number(m[1]) * mult;
      rest = rest.slice(m[0].length);
    }
    if (Number.isFinite(ms)) return ms;
  }
  throw new InvalidOptionError(`${where}: cannot read ${JSON.stringify(text)} as a duration; use e.g. 30d, 12h, 90m, 45s or a number of ms`);
}
