// Data of the overlay view (OverlayPanel.tsx): the 1-D numeric datasets of a file, their
// values, and the CSV of an overlay (one x column shared by every curve, or x, y pairs).
import { ctorOf, type H5GroveMeta, type NumCtor } from '../common/downsample';
import { problemOf } from '../common/problem';

export interface Series {
  path: string;
  length: number;
  dtype: string;
  units?: string;
}

export type SeriesValues = Float64Array | InstanceType<NumCtor>;

/** Groups visited at most when listing a file (each is one /meta request). */
const MAX_GROUPS = 400;

function query(params: Record<string, string>): string {
  return new URLSearchParams(params).toString();
}

async function meta(apiURL: string, file: string, path: string): Promise<H5GroveMeta> {
  const response = await fetch(`${apiURL}/meta?${query({ file, path })}`, {
    credentials: 'same-origin',
  });
  if (!response.ok) {
    throw await problemOf(response);
  }
  return (await response.json()) as H5GroveMeta;
}

function isNumeric(m: H5GroveMeta): boolean {
  return m.type?.class === 0 || m.type?.class === 1;
}

/**
 * Every 1-D numeric dataset (≥ 2 values) of the file, breadth first from the root. Links
 * are not followed (a soft link would list its target twice; external ones may leave the
 * file), and the walk stops after MAX_GROUPS groups.
 */
export async function listSeries(apiURL: string, file: string): Promise<Series[]> {
  const found: Series[] = [];
  const queue = ['/'];
  let visited = 0;
  while (queue.length > 0 && visited < MAX_GROUPS) {
    const batch = queue.splice(0, 8);
    visited += batch.length;
    const metas = await Promise.all(batch.map((p) => meta(apiURL, file, p)));
    metas.forEach((group, i) => {
      const prefix = batch[i].replace(/\/+$/u, '');
      for (const child of group.children ?? []) {
        const path = `${prefix}/${child.name ?? ''}`;
        if (child.kind === 'group') {
          queue.push(path);
        } else if (
          child.kind === 'dataset' &&
          isNumeric(child) &&
          child.shape?.length === 1 &&
          child.shape[0] >= 2
        ) {
          const dtype = child.type?.dtype;
          found.push({
            path,
            length: child.shape[0],
            dtype: typeof dtype === 'string' ? dtype : '',
          });
        }
      }
    });
  }
  return found.sort((a, b) => a.path.localeCompare(b.path));
}

/** The typed array of a numeric type's `dtype=safe` bytes; undefined for 64-bit integers. */
function seriesCtor(m: H5GroveMeta): NumCtor | undefined {
  // f16/longdouble come as float64 with dtype=safe (ctorOf leaves them out of binning).
  return ctorOf(m.type) ?? (m.type?.class === 1 && m.type.size === 16 ? Float64Array : undefined);
}

/** All values of a 1-D dataset as numbers (raw bytes when the type allows, else JSON). */
export async function fetchSeries(
  apiURL: string,
  file: string,
  path: string,
): Promise<SeriesValues> {
  const m = await meta(apiURL, file, path);
  const ctor = seriesCtor(m);
  const format = ctor ? 'bin' : 'json';
  const response = await fetch(
    `${apiURL}/data?${query({ file, path, format, dtype: 'safe' })}`,
    { credentials: 'same-origin' },
  );
  if (!response.ok) {
    throw await problemOf(response);
  }
  if (ctor) {
    return new ctor(await response.arrayBuffer());
  }
  // 64-bit integers: JSON numbers (exact up to 2^53, enough for a plot); null is NaN.
  return Float64Array.from((await response.json()) as (number | null)[], (v) =>
    v === null ? Number.NaN : v,
  );
}

function csvField(text: string): string {
  return /[",\n]/u.test(text) ? `"${text.replace(/"/gu, '""')}"` : text;
}

export interface Column {
  label: string;
  values: ArrayLike<number>;
}

/**
 * The overlay as CSV: a header row of column labels, then one row per point; numbers are
 * written in full precision (JavaScript's shortest round-trip form), NaN as `nan`, and a
 * column shorter than the longest is left empty below its last value.
 */
export function overlayCSV(columns: Column[]): string {
  const lines = [columns.map((c) => csvField(c.label)).join(',')];
  const n = Math.max(0, ...columns.map((c) => c.values.length));
  for (let i = 0; i < n; i += 1) {
    lines.push(
      columns
        .map((c) => {
          if (i >= c.values.length) {
            return '';
          }
          const v = Number(c.values[i]);
          return Number.isNaN(v) ? 'nan' : String(v);
        })
        .join(','),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Same length and the same numbers (NaN equal to NaN). */
export function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a === b) {
    return true;
  }
  if (a.length !== b.length) {
    return false;
  }
  for (let i = 0; i < a.length; i += 1) {
    if (!Object.is(Number(a[i]), Number(b[i])) && Number(a[i]) !== Number(b[i])) {
      return false;
    }
  }
  return true;
}

/** How many values a log axis cannot show (zero, negative; NaN is not counted). */
export function nonPositive(values: ArrayLike<number>): number {
  let count = 0;
  for (let i = 0; i < values.length; i += 1) {
    if (Number(values[i]) <= 0) {
      count += 1;
    }
  }
  return count;
}
