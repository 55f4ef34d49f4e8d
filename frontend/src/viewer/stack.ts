// Frames of an image stack for the player (StackPlayer.tsx): which dataset is a stack, the
// selection of one frame, and a small cache that fetches frames ahead of the one on screen.
//
// A frame is fetched from /h5/data as raw bytes. When it is larger than the chosen display
// size the server bins it (`downsample=RxC`, mean of each bin, float64), so a 1024×1024
// frame of a 1 GB stack travels as 512×512 values; smaller frames come at full resolution
// in their own type.
import { ctorOf, type H5GroveMeta, type NumCtor } from '../common/downsample';
import { problemOf } from '../common/problem';
import { type AxisInfo, axisNames, fitsDimension } from './nexusAxes';

export interface StackInfo {
  /** Dataset played (an NXdata group is replaced by its signal). */
  path: string;
  shape: number[];
  /** Typed array of the dataset's values after `dtype=safe`; undefined → always binned. */
  ctor: NumCtor | undefined;
  /** NeXus axis of each dimension (from the NXdata group holding the stack), if any. */
  axes: (AxisInfo | undefined)[];
}

export interface Frame {
  values: Float64Array | InstanceType<NumCtor>;
  rows: number;
  cols: number;
  /** Bin factors (rows, columns); [1, 1] at full resolution. */
  factors: [number, number];
  selection: string;
}

async function getJSON<T>(url: string): Promise<T> {
  const response = await fetch(url, { credentials: 'same-origin' });
  if (!response.ok) {
    throw await problemOf(response);
  }
  return (await response.json()) as T;
}

function query(params: Record<string, string>): string {
  return new URLSearchParams(params).toString();
}

/**
 * The stack behind `path`: the dataset itself, or the `@signal` of an NXdata group; an
 * error message when it is not a numeric dataset of three or more dimensions.
 */
export async function resolveStack(
  apiURL: string,
  file: string,
  path: string,
): Promise<StackInfo> {
  let meta = await getJSON<H5GroveMeta>(`${apiURL}/meta?${query({ file, path })}`);
  let target = path;
  if (meta.kind === 'group') {
    const names = ((meta.attributes ?? []) as { name: string }[]).map((a) => a.name);
    if (!names.includes('signal')) {
      throw new Error(`${path} is a group without a NeXus signal: select a 3-D dataset.`);
    }
    const attrs = await getJSON<{ signal?: unknown }>(
      `${apiURL}/attr?${query({ file, path, attr_keys: 'signal' })}`,
    );
    target = `${path.replace(/\/+$/u, '')}/${String(attrs.signal)}`;
    meta = await getJSON<H5GroveMeta>(`${apiURL}/meta?${query({ file, path: target })}`);
  }
  const shape = meta.shape ?? [];
  const cls = meta.type?.class;
  if (meta.kind !== 'dataset' || (cls !== 0 && cls !== 1) || shape.length < 3) {
    throw new Error(
      `${target} is not a numeric stack (shape ${JSON.stringify(shape)}): the player needs ` +
        'a dataset with three or more dimensions, the last two being the image.',
    );
  }
  const axes = await stackAxes(apiURL, file, target, shape).catch(() => []);
  return { path: target, shape, ctor: ctorOf(meta.type), axes };
}

/** One 1-D axis dataset fitting a dimension of `n`; undefined when it does not fit. */
async function loadAxis(
  apiURL: string,
  file: string,
  name: string,
  path: string,
  n: number,
): Promise<AxisInfo | undefined> {
  const meta = await getJSON<H5GroveMeta>(`${apiURL}/meta?${query({ file, path })}`);
  const shape = meta.shape ?? [];
  const cls = meta.type?.class;
  if (meta.kind !== 'dataset' || (cls !== 0 && cls !== 1) || shape.length !== 1) {
    return undefined;
  }
  if (shape[0] !== n && shape[0] !== n + 1) {
    return undefined;
  }
  const [values, attrs] = await Promise.all([
    getJSON<unknown>(`${apiURL}/data?${query({ file, path, format: 'json' })}`),
    getJSON<Record<string, unknown>>(`${apiURL}/attr?${query({ file, path })}`),
  ]);
  if (!Array.isArray(values) || !fitsDimension(values, n)) {
    return undefined;
  }
  const text = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
  return {
    name,
    values: values.map(Number),
    units: text(attrs.units),
    longName: text(attrs.long_name),
  };
}

/**
 * The NeXus axes of a stack that is the @signal of its NXdata group; an axis that is
 * missing, unreadable or of the wrong length is left out (pixel indices instead).
 */
async function stackAxes(
  apiURL: string,
  file: string,
  path: string,
  shape: number[],
): Promise<(AxisInfo | undefined)[]> {
  const cut = path.lastIndexOf('/');
  const group = path.slice(0, cut) || '/';
  const attrs = await getJSON<Record<string, unknown>>(
    `${apiURL}/attr?${query({ file, path: group })}`,
  );
  if (attrs.NX_class !== 'NXdata' || attrs.signal !== path.slice(cut + 1)) {
    return [];
  }
  const base = group === '/' ? '' : group;
  return Promise.all(
    axisNames(attrs, shape.length).map((name, dim) =>
      name
        ? loadAxis(apiURL, file, name, `${base}/${name}`, shape[dim]).catch(() => undefined)
        : undefined,
    ),
  );
}

/** Selection of one frame: fixed indices for the leading axes, the play axis at `frame`. */
export function frameSelection(
  shape: number[],
  playAxis: number,
  fixed: number[],
  frame: number,
): string {
  const lead = shape.slice(0, -2).map((_, i) => String(i === playAxis ? frame : (fixed[i] ?? 0)));
  return [...lead, ':', ':'].join(',');
}

/** Bin factor so that `n` pixels fit in `side`. */
export function binFactor(n: number, side: number): number {
  return Math.max(1, Math.ceil(n / side));
}

export async function fetchFrame(
  apiURL: string,
  file: string,
  stack: StackInfo,
  selection: string,
  maxSide: number | undefined,
  signal?: AbortSignal,
): Promise<Frame> {
  const rows = stack.shape[stack.shape.length - 2];
  const cols = stack.shape[stack.shape.length - 1];
  const params: Record<string, string> = {
    file,
    path: stack.path,
    selection,
    format: 'bin',
    dtype: 'safe',
  };
  const binned = !stack.ctor || (maxSide !== undefined && Math.max(rows, cols) > maxSide);
  if (binned) {
    const side = maxSide ?? Math.max(rows, cols);
    params.downsample = `${Math.min(rows, side)}x${Math.min(cols, side)}`;
    params.downsample_method = 'mean';
  }
  const response = await fetch(`${apiURL}/data?${query(params)}`, {
    credentials: 'same-origin',
    signal,
  });
  if (!response.ok) {
    throw await problemOf(response);
  }
  const buffer = await response.arrayBuffer();
  const factors = (response.headers.get('X-Downsample-Factors') ?? '1,1')
    .split(',')
    .map(Number) as [number, number];
  // Bin means come as float64; a full-resolution frame in the dataset's own type.
  const values = binned || !stack.ctor ? new Float64Array(buffer) : new stack.ctor(buffer);
  return {
    values,
    rows: Math.ceil(rows / factors[0]),
    cols: Math.ceil(cols / factors[1]),
    factors,
    selection,
  };
}

/** Minimum, maximum and mean of the finite values of a frame. */
export function frameStats(values: ArrayLike<number>): { min: number; max: number; mean: number } {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let n = 0;
  for (let i = 0; i < values.length; i += 1) {
    const v = values[i];
    if (Number.isFinite(v)) {
      min = v < min ? v : min;
      max = v > max ? v : max;
      sum += v;
      n += 1;
    }
  }
  return { min, max, mean: n ? sum / n : Number.NaN };
}

/**
 * Frames by selection, fetched at most `limit` at a time ahead of need and forgotten in
 * least-recently-used order, so playing a 520-frame stack holds a handful of frames.
 */
export class FrameCache {
  private readonly frames = new Map<string, Promise<Frame>>();

  constructor(
    private readonly load: (selection: string) => Promise<Frame>,
    private readonly limit = 12,
  ) {}

  get(selection: string): Promise<Frame> {
    let frame = this.frames.get(selection);
    if (frame) {
      this.frames.delete(selection); // re-insert: most recently used last
    } else {
      frame = this.load(selection);
      // A failed fetch is not kept: the next attempt asks again.
      frame.catch(() => this.frames.delete(selection));
    }
    this.frames.set(selection, frame);
    while (this.frames.size > this.limit) {
      const oldest = this.frames.keys().next().value as string;
      this.frames.delete(oldest);
    }
    return frame;
  }
}
