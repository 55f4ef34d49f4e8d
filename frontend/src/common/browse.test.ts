import { describe, expect, it } from 'vitest';

import { dirname, formatDate, formatSize } from './browse';

describe('file browser formatting', () => {
  it('writes sizes in SI units with one decimal', () => {
    expect(formatSize(0)).toBe('0 B');
    expect(formatSize(999)).toBe('999 B');
    expect(formatSize(1000)).toBe('1.0 kB');
    expect(formatSize(1_234_567)).toBe('1.2 MB');
    expect(formatSize(3.5e9)).toBe('3.5 GB');
    expect(formatSize(5e15)).toBe('5000.0 TB'); // no unit past TB
  });

  it('shows ISO 8601 times to the minute', () => {
    expect(formatDate('2026-03-04T12:34:56.789Z')).toBe('2026-03-04 12:34');
  });

  it('takes the folder of a path', () => {
    expect(dirname('raw/xrf/map_001.h5')).toBe('raw/xrf');
    expect(dirname('map_001.h5')).toBe('');
  });
});
