import { describe, expect, it } from 'vitest';

import {
  BIG_SIDE,
  type Binned,
  BinRegistry,
  binAxis,
  binnedRequest,
  castMeans,
  ctorOf,
  displayedShape,
  dtypeKind,
  fullSelection,
  imageFactors,
} from './downsample';

const f4 = { class: 1, dtype: '<f4', size: 4 };
const i8 = { class: 0, dtype: '<i8', size: 8, sign: 1 };

describe('types that can be binned', () => {
  it('reads numpy kind letters and ignores compound dtypes', () => {
    expect(dtypeKind({ dtype: '<f4' })).toBe('f');
    expect(dtypeKind({ dtype: '|u1' })).toBe('u');
    expect(dtypeKind({ dtype: { x: '<f8' } })).toBe('');
    expect(dtypeKind(undefined)).toBe('');
  });

  it('maps h5grove types to the typed arrays of dtype=safe', () => {
    expect(ctorOf({ class: 1, size: 2 })).toBe(Float32Array); // f2 is sent as float32
    expect(ctorOf(f4)).toBe(Float32Array);
    expect(ctorOf({ class: 1, size: 8 })).toBe(Float64Array);
    expect(ctorOf({ class: 1, size: 16 })).toBeUndefined(); // long double
    expect(ctorOf({ class: 0, dtype: '<u2', size: 2, sign: 0 })).toBe(Uint16Array);
    expect(ctorOf({ class: 0, dtype: '<i2', size: 2, sign: 1 })).toBe(Int16Array);
    expect(ctorOf({ class: 0, dtype: '<i4', size: 4 })).toBe(Int32Array); // no sign: kind
    expect(ctorOf({ class: 0, dtype: '|u1', size: 1 })).toBe(Uint8Array);
    expect(ctorOf(i8)).toBeUndefined(); // BigInt arrays are left to H5Web
    expect(ctorOf({ class: 6, dtype: { a: '<f4' }, size: 4 })).toBeUndefined();
    expect(ctorOf(undefined)).toBeUndefined();
  });
});

describe('bin factors', () => {
  it('leaves images up to 4096² alone', () => {
    expect(imageFactors([BIG_SIDE, BIG_SIDE])).toBeUndefined();
    expect(imageFactors([10, 4096])).toBeUndefined();
    expect(imageFactors([5000])).toBeUndefined(); // 1-D
  });

  it('bins a long side to at most 2048 shown pixels', () => {
    expect(imageFactors([4097, 10])).toEqual([3, 1]); // ceil(4097 / 2048) = 3
    expect(imageFactors([3000, 5000])).toEqual([2, 3]);
  });

  it('bins only the last two axes of a stack', () => {
    // 4096 → ceil(4096 / 2048) = 2, 4097 → 3; the frame axis keeps factor 1
    expect(imageFactors([7, 4096, 4097])).toEqual([1, 2, 3]);
  });

  it('shows ceil(n / factor) pixels per axis', () => {
    expect(displayedShape({ shape: [10000, 5000], factors: [5, 3], ctor: Float32Array })).toEqual(
      [2000, 1667],
    );
  });
});

describe('requests rewritten for a binned stack', () => {
  // 3 frames of 10000 × 6000, bins of 5 rows × 3 columns: 2000 × 2000 shown.
  const info: Binned = { shape: [3, 10000, 6000], factors: [1, 5, 3], ctor: Float32Array };

  it('asks the server for bin means of a 2-D slice', () => {
    const { params, means } = binnedRequest(info, { file: 'a.h5', selection: '1,:,:' });
    expect(means).toBe(true);
    expect(params).toEqual({
      file: 'a.h5',
      selection: '1,:,:',
      downsample: '2000x2000',
      downsample_method: 'mean',
    });
  });

  it('reads a 1-D profile strided, at the middle row of the shown bin', () => {
    // shown row 7 covers real rows 35..39: its middle is 7 * 5 + floor(5 / 2) = 37
    const { params, means } = binnedRequest(info, { selection: '1,7,:' });
    expect(means).toBe(false);
    expect(params.selection).toBe('1,37,0:6000:3');
  });

  it('never points past the last real row of a short last bin', () => {
    // 4099 rows in bins of 3: shown row 1366 holds only row 4098
    const short: Binned = { shape: [4099, 10], factors: [3, 1], ctor: Float32Array };
    expect(fullSelection(short, '1366,:')).toBe('4098,:');
  });

  it('gives exports the full-resolution selection', () => {
    expect(fullSelection(info, '2,:,:')).toBe('2,:,:');
    expect(fullSelection(info, '0,10,:')).toBe('0,52,:');
    expect(fullSelection(info, undefined)).toBeUndefined();
  });
});

describe('values', () => {
  it('rounds float64 bin means to the integer type shown', () => {
    const means = new Float64Array([1.4, 2.5, -1.5, 3.6]).buffer;
    // Math.round: halves go up, also below zero (−1.5 → −1)
    expect([...new Int16Array(castMeans(means, Int16Array))]).toEqual([1, 3, -1, 4]);
  });

  it('keeps float64 means as they are and narrows to float32', () => {
    const buffer = new Float64Array([0.1, 1e-3]).buffer;
    expect(castMeans(buffer, Float64Array)).toBe(buffer);
    expect([...new Float32Array(castMeans(buffer, Float32Array))]).toEqual([
      Math.fround(0.1),
      Math.fround(1e-3),
    ]);
  });

  it('averages an axis over the same bins as the image (last bin short)', () => {
    const axis = new Float64Array([1, 2, 3, 4, 5, 6, 7]).buffer;
    // (1+2+3)/3 = 2, (4+5+6)/3 = 5, 7/1 = 7
    expect([...new Float64Array(binAxis(axis, Float64Array, 3))]).toEqual([2, 5, 7]);
    const ints = new Int32Array([1, 2, 4, 5, 10]).buffer;
    // 1.5 → 2, 4.5 → 5, 10 → 10 (Math.round: halves up)
    expect([...new Int32Array(binAxis(ints, Int32Array, 2))]).toEqual([2, 5, 10]);
  });
});

describe('BinRegistry', () => {
  it('reports a big image with its shown shape and bins its NeXus axes alike', () => {
    const registry = new BinRegistry();
    const group = registry.rewriteMeta('/entry/data/', {
      kind: 'group',
      name: 'data',
      children: [
        { kind: 'dataset', name: 'image', shape: [10000, 300], type: f4 },
        { kind: 'dataset', name: 'y', shape: [10000], type: { class: 1, size: 8 } },
        { kind: 'dataset', name: 'x', shape: [300], type: f4 },
        { kind: 'dataset', name: 'count', shape: [10000], type: i8 },
        { kind: 'group', name: 'sub' },
      ],
    });
    const shapes = Object.fromEntries(
      (group.children ?? []).map((c) => [c.name, c.shape ?? null]),
    );
    // 10000 rows → bins of ceil(10000 / 2048) = 5 → 2000 rows; 300 columns unbinned
    expect(shapes).toEqual({ image: [2000, 300], y: [2000], x: [300], count: [10000], sub: null });
    expect(registry.get('/entry/data/image')).toEqual({
      shape: [10000, 300],
      factors: [5, 1],
      ctor: Float32Array,
    });
    expect(registry.get('/entry/data/y')?.factors).toEqual([5]);
    expect(registry.get('/entry/data/x')).toBeUndefined();
    // asked again for the dataset itself: the same shown shape
    expect(
      registry.rewriteMeta('/entry/data/image', {
        kind: 'dataset',
        name: 'image',
        shape: [10000, 300],
        type: f4,
      }).shape,
    ).toEqual([2000, 300]);
  });

  it('leaves small images and unbinnable types untouched', () => {
    const registry = new BinRegistry();
    const small = { kind: 'dataset', name: 'a', shape: [512, 512], type: f4 };
    expect(registry.rewriteMeta('/a', small)).toBe(small);
    const wide = { kind: 'dataset', name: 'b', shape: [8000, 8000], type: i8 };
    expect(registry.rewriteMeta('/b', wide)).toBe(wide);
    expect(registry.entries()).toEqual([]);
  });
});
