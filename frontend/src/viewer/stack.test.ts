import { describe, expect, it } from 'vitest';

import { binFactor, type Frame, FrameCache, frameSelection, frameStats } from './stack';

describe('frame selections', () => {
  it('indexes the play axis and keeps the last two axes whole', () => {
    expect(frameSelection([520, 2048, 2048], 0, [], 120)).toBe('120,:,:');
    // 4-D: 3 positions × 100 angles; playing angles at position 2
    expect(frameSelection([3, 100, 64, 64], 1, [2], 7)).toBe('2,7,:,:');
    expect(frameSelection([3, 100, 64, 64], 0, [0, 9], 1)).toBe('1,9,:,:');
  });

  it('bins a frame to fit the display side', () => {
    expect(binFactor(2048, 512)).toBe(4);
    expect(binFactor(1000, 512)).toBe(2); // ceil(1000 / 512)
    expect(binFactor(100, 512)).toBe(1);
  });
});

describe('frame statistics', () => {
  it('counts only finite values', () => {
    const { min, max, mean } = frameStats([1, Number.NaN, 3, Number.POSITIVE_INFINITY, -2]);
    expect([min, max]).toEqual([-2, 3]);
    expect(mean).toBeCloseTo(2 / 3, 15);
    expect(frameStats(new Float32Array([Number.NaN])).mean).toBeNaN();
  });
});


describe('FrameCache', () => {
  function frame(selection: string): Frame {
    return { values: new Float64Array(1), rows: 1, cols: 1, factors: [1, 1], selection };
  }

  it('loads each frame once and forgets the least recently used', async () => {
    const loads: string[] = [];
    const cache = new FrameCache(async (s) => {
      loads.push(s);
      return frame(s);
    }, 2);
    await cache.get('0,:,:');
    await cache.get('1,:,:');
    await cache.get('0,:,:'); // cached; now the most recent
    await cache.get('2,:,:'); // evicts 1
    await cache.get('0,:,:');
    await cache.get('1,:,:');
    expect(loads).toEqual(['0,:,:', '1,:,:', '2,:,:', '1,:,:']);
  });

  it('asks again after a failed fetch', async () => {
    let calls = 0;
    const cache = new FrameCache(async (s) => {
      calls += 1;
      if (calls === 1) {
        throw new Error('network');
      }
      return frame(s);
    });
    await expect(cache.get('5,:,:')).rejects.toThrow('network');
    await expect(cache.get('5,:,:')).resolves.toMatchObject({ selection: '5,:,:' });
    expect(calls).toBe(2);
  });
});
