import { describe, expect, it } from 'vitest';

import { nonPositive, overlayCSV, sameValues } from './overlay';

describe('overlay CSV', () => {
  it('quotes labels, writes NaN as nan and leaves short columns empty', () => {
    const csv = overlayCSV([
      { label: 'energy (keV)', values: [7.1, 7.2, 7.3] },
      { label: 'mu, "norm"', values: new Float64Array([0.5, Number.NaN]) },
      { label: 'i0', values: new Int32Array([100000, 99999, 3]) },
    ]);
    expect(csv).toBe(
      'energy (keV),"mu, ""norm""",i0\n7.1,0.5,100000\n7.2,nan,99999\n7.3,,3\n',
    );
  });

  it('writes float32 values in the shortest form that reads back the same float', () => {
    const csv = overlayCSV([{ label: 'y', values: new Float32Array([0.1]) }]);
    // float32 0.1 is 0.100000001490116…, not 0.1
    expect(csv).toBe(`y\n${Math.fround(0.1)}\n`);
    expect(Number(csv.split('\n')[1])).toBe(Math.fround(0.1));
  });

  it('is only a header without points', () => {
    expect(overlayCSV([{ label: 'x', values: [] }])).toBe('x\n');
    expect(overlayCSV([])).toBe('\n');
  });
});

describe('comparisons', () => {
  it('treats NaN as equal to NaN, and lengths must match', () => {
    expect(sameValues([1, Number.NaN], new Float64Array([1, Number.NaN]))).toBe(true);
    expect(sameValues([1, 2], [1, 2, 3])).toBe(false);
    expect(sameValues([0, 1], [-0, 1])).toBe(true);
    expect(sameValues([1, 2], [1, 2.000001])).toBe(false);
  });

  it('counts the values a log axis cannot show (NaN not counted)', () => {
    expect(nonPositive([1, 0, -2, Number.NaN, 1e-300])).toBe(2);
  });
});
