// Server-side downsampling of big images, hidden behind H5Web's h5grove provider.
//
// H5Web asks for a whole 2-D slice at full resolution; a 20000×20000 image would be 1.6 GB
// of float32 and larger than any WebGL texture. The provider has no hook for this, so the
// fetcher rewrites the traffic instead:
//   /meta : a big numeric image (last two axes) is reported with its displayed shape, e.g.
//           2000×2000, and remembered with its real shape and bin factors;
//   /data : a 2-D slice of it becomes `downsample=RxC&downsample_method=mean` (the server
//           reads chunk-aligned bands and bins them); a 1-D slice becomes a strided read;
//           an index along a binned axis is scaled back to the real index.
// 1-D siblings as long as a binned axis (the NeXus axes of an NXdata group) are averaged
// over the same bins so axis values stay aligned with the image. Exports (npy/tiff) use
// `fullSelection` to ask for the real, full-resolution slice.

/** Images with a side longer than this, or more pixels than its square, are binned. */
export const BIG_SIDE = 4096;
/** Binned images are shown at most this many pixels along each side. */
export const DISPLAY_SIDE = 2048;

export type NumCtor =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | Int8ArrayConstructor
  | Int16ArrayConstructor
  | Int32ArrayConstructor
  | Uint8ArrayConstructor
  | Uint16ArrayConstructor
  | Uint32ArrayConstructor;

export interface Binned {
  /** Real shape of the dataset. */
  shape: number[];
  /** Bin factor per axis (1 where nothing is binned). */
  factors: number[];
  /** Typed array H5Web builds from the bytes (from the `dtype=safe` type). */
  ctor: NumCtor;
}

/**
 * A type as h5grove's /meta describes it. Only some fields are present for each class, and
 * `dtype` is numpy's type string ("<f4", "|b1", "|O") for most classes but an object of
 * member names → member dtypes for compound types; H5Web reads compound, enum, array and
 * vlen types from `members`/`base`, so nothing here may assume a string.
 */
export interface H5GroveType {
  /** HDF5 type class: 0 integer, 1 float, 3 string, 5 opaque, 6 compound, 8 enum, … */
  class?: number;
  dtype?: string | Record<string, unknown>;
  /** Size in bytes. */
  size?: number;
  /** Integers: 0 unsigned, 1 two's complement. */
  sign?: number;
  [key: string]: unknown;
}

export interface H5GroveMeta {
  kind?: string;
  name?: string;
  shape?: number[] | null;
  type?: H5GroveType;
  children?: H5GroveMeta[];
  [key: string]: unknown;
}

/** numpy's kind letter ('i', 'u', 'f', …) of a simple type's dtype string, else ''. */
export function dtypeKind(type: H5GroveType | undefined): string {
  const dtype = type?.dtype;
  return typeof dtype === 'string' ? dtype.replace(/^[<>|=]/u, '').charAt(0) : '';
}

/**
 * The typed array for an h5grove type after `dtype=safe`, for the types we can bin: plain
 * integers and floats. Everything else (compound, enum and bool, strings, opaque, …) and
 * any type described in a shape we do not expect gives undefined, i.e. left to H5Web.
 */
export function ctorOf(type: H5GroveType | undefined): NumCtor | undefined {
  if (!type || typeof type !== 'object') {
    return undefined;
  }
  const size = typeof type.size === 'number' ? type.size : 0;
  if (type.class === 1) {
    // f2 is sent as float32 with dtype=safe; f16/longdouble as float64 (not binned).
    return size > 0 && size <= 4 ? Float32Array : size === 8 ? Float64Array : undefined;
  }
  if (type.class === 0) {
    const kind = dtypeKind(type);
    const signed = type.sign === undefined ? kind === 'i' : type.sign === 1;
    switch (size) {
      case 1:
        return signed ? Int8Array : Uint8Array;
      case 2:
        return signed ? Int16Array : Uint16Array;
      case 4:
        return signed ? Int32Array : Uint32Array;
      default:
        return undefined; // 64-bit integers become BigInt arrays: left alone
    }
  }
  return undefined;
}

/** Bin factors for an image of this shape, or undefined when it is small enough. */
export function imageFactors(shape: number[]): number[] | undefined {
  if (shape.length < 2) {
    return undefined;
  }
  const rows = shape[shape.length - 2];
  const cols = shape[shape.length - 1];
  if (Math.max(rows, cols) <= BIG_SIDE && rows * cols <= BIG_SIDE * BIG_SIDE) {
    return undefined;
  }
  const factors = shape.map(() => 1);
  factors[shape.length - 2] = Math.max(1, Math.ceil(rows / DISPLAY_SIDE));
  factors[shape.length - 1] = Math.max(1, Math.ceil(cols / DISPLAY_SIDE));
  return factors;
}

export function displayedShape(info: Binned): number[] {
  return info.shape.map((n, i) => Math.ceil(n / info.factors[i]));
}

type Member = number | 'all';

export function parseSelection(selection: string | undefined, ndim: number): Member[] {
  const parts = selection ? selection.split(',') : [];
  return Array.from({ length: ndim }, (_, i) => {
    const part = (parts[i] ?? ':').trim();
    return part.includes(':') ? 'all' : Number.parseInt(part, 10);
  });
}

/** Real index for an index along a displayed (binned) axis: the bin's middle row. */
function realIndex(index: number, factor: number, length: number): number {
  return Math.min(length - 1, index * factor + Math.floor(factor / 2));
}

export interface ServerRequest {
  params: Record<string, string>;
  /** True when the answer is float64 bin means that must be cast to `info.ctor`. */
  means: boolean;
}

/** Rewrite H5Web's /data parameters for a binned dataset. */
export function binnedRequest(info: Binned, params: Record<string, string>): ServerRequest {
  const members = parseSelection(params.selection, info.shape.length);
  const real: string[] = [];
  const sliced: number[] = [];
  members.forEach((m, axis) => {
    const f = info.factors[axis];
    const n = info.shape[axis];
    if (m === 'all') {
      sliced.push(axis);
      real.push(f > 1 ? `0:${n}:${f}` : ':');
    } else {
      real.push(String(f > 1 ? realIndex(m, f, n) : m));
    }
  });
  const out: Record<string, string> = { ...params };
  if (sliced.length === 2) {
    const size = sliced.map((axis) => Math.ceil(info.shape[axis] / info.factors[axis]));
    out.selection = members
      .map((m, axis) => (m === 'all' ? ':' : String(real[axis])))
      .join(',');
    out.downsample = `${size[0]}x${size[1]}`;
    out.downsample_method = 'mean';
    return { params: out, means: true };
  }
  out.selection = real.join(',');
  return { params: out, means: false };
}

/** Selection of the real data behind a selection made on the displayed shape. */
export function fullSelection(info: Binned, selection: string | undefined): string | undefined {
  if (!selection) {
    return undefined;
  }
  return parseSelection(selection, info.shape.length)
    .map((m, axis) => {
      if (m === 'all') {
        return ':';
      }
      const f = info.factors[axis];
      return String(f > 1 ? realIndex(m, f, info.shape[axis]) : m);
    })
    .join(',');
}

/** Cast float64 bin means to the typed array H5Web expects for the dataset's type. */
export function castMeans(buffer: ArrayBuffer, ctor: NumCtor): ArrayBuffer {
  const means = new Float64Array(buffer);
  if (ctor === Float64Array) {
    return buffer;
  }
  const isInt = ctor !== Float32Array;
  const out = new ctor(means.length);
  for (let i = 0; i < means.length; i += 1) {
    out[i] = isInt ? Math.round(means[i]) : means[i];
  }
  return out.buffer as ArrayBuffer;
}

/** Average a 1-D array over bins of `factor` values (last bin may be short). */
export function binAxis(buffer: ArrayBuffer, ctor: NumCtor, factor: number): ArrayBuffer {
  const values = new ctor(buffer);
  const n = Math.ceil(values.length / factor);
  const out = new ctor(n);
  const isInt = ctor !== Float32Array && ctor !== Float64Array;
  for (let b = 0; b < n; b += 1) {
    let sum = 0;
    const end = Math.min(values.length, (b + 1) * factor);
    for (let i = b * factor; i < end; i += 1) {
      sum += values[i];
    }
    const mean = sum / (end - b * factor);
    out[b] = isInt ? Math.round(mean) : mean;
  }
  return out.buffer as ArrayBuffer;
}

/** Remembers what was binned, and rewrites /meta answers accordingly. */
export class BinRegistry {
  private readonly binned = new Map<string, Binned>();

  public get(path: string): Binned | undefined {
    return this.binned.get(path);
  }

  public entries(): [string, Binned][] {
    return [...this.binned.entries()];
  }

  /** Rewrite a /meta body for `path` (a group lists its children one level deep). */
  public rewriteMeta(path: string, meta: H5GroveMeta): H5GroveMeta {
    if (meta.kind === 'dataset') {
      return this.rewriteDataset(path, meta);
    }
    if (meta.kind !== 'group' || !meta.children) {
      return meta;
    }
    const prefix = path === '/' ? '' : path.replace(/\/+$/u, '');
    const children = meta.children.map((child) =>
      child.kind === 'dataset' && child.name
        ? this.rewriteDataset(`${prefix}/${child.name}`, child)
        : child,
    );
    // NeXus axes: 1-D siblings as long as a binned axis get the same bins.
    const lengths = new Map<number, number>();
    for (const child of meta.children) {
      const info = child.name ? this.binned.get(`${prefix}/${child.name}`) : undefined;
      if (info && info.shape.length >= 2) {
        info.shape.forEach((n, axis) => {
          if (info.factors[axis] > 1) {
            lengths.set(n, info.factors[axis]);
          }
        });
      }
    }
    return {
      ...meta,
      children: children.map((child, i) => {
        const original = meta.children?.[i];
        const shape = original?.shape;
        const ctor = ctorOf(original?.type);
        const factor = shape && shape.length === 1 ? lengths.get(shape[0]) : undefined;
        if (!original || !original.name || !shape || !ctor || !factor) {
          return child;
        }
        const info: Binned = { shape: [...shape], factors: [factor], ctor };
        this.binned.set(`${prefix}/${original.name}`, info);
        return { ...original, shape: displayedShape(info) };
      }),
    };
  }

  private rewriteDataset(path: string, meta: H5GroveMeta): H5GroveMeta {
    const known = this.binned.get(path);
    if (known) {
      return { ...meta, shape: displayedShape(known) };
    }
    const ctor = ctorOf(meta.type);
    const shape = meta.shape;
    if (!ctor || !shape) {
      return meta;
    }
    const factors = imageFactors(shape);
    if (!factors) {
      return meta;
    }
    const info: Binned = { shape: [...shape], factors, ctor };
    this.binned.set(path, info);
    return { ...meta, shape: displayedShape(info) };
  }
}
