import { describe, expect, it } from 'vitest';

import { clock, growthOf } from './live';

describe('what a poll compares', () => {
  it('is the shape of a dataset', () => {
    expect(growthOf({ kind: 'dataset', shape: [12, 256, 256] })).toEqual({
      key: '[12,256,256]',
      shape: [12, 256, 256],
    });
    expect(growthOf({ kind: 'dataset', shape: null })).toEqual({ key: 'null', shape: null });
  });

  it('is every child shape of a group, showing the largest dataset', () => {
    const before = growthOf({
      kind: 'group',
      children: [
        { kind: 'dataset', name: 'angle', shape: [12] },
        { kind: 'dataset', name: 'data', shape: [12, 256, 256] },
        { kind: 'dataset', name: 'dark', shape: [1, 256, 256] },
        { kind: 'group', name: 'sub' },
      ],
    });
    expect(before.shape).toEqual([12, 256, 256]); // most axes, then most values
    const after = growthOf({
      kind: 'group',
      children: [
        { kind: 'dataset', name: 'angle', shape: [13] },
        { kind: 'dataset', name: 'data', shape: [12, 256, 256] },
        { kind: 'dataset', name: 'dark', shape: [1, 256, 256] },
      ],
    });
    expect(after.key).not.toBe(before.key); // the axis grew first: a change already
  });
});

describe('clock', () => {
  it('writes the local time of day with two digits each', () => {
    expect(clock(new Date(2026, 0, 2, 3, 4, 5))).toBe('03:04:05');
    expect(clock(new Date(2026, 11, 31, 23, 59, 59))).toBe('23:59:59');
  });
});
