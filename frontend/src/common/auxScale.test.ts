import { describe, expect, it } from 'vitest';

import { auxiliariesToDraw, magnitude } from './auxScale';

// A XANES group: μ(E) between 0 and 1.5 with I0 (~1e5 counts) listed as auxiliary signal.
const mu = { min: 0, max: 1.5 };

describe('auxiliary signals drawn with the signal', () => {
  it('uses the largest absolute value as magnitude', () => {
    expect(magnitude({ min: -20, max: 1 })).toBe(20);
    expect(magnitude({ min: 0, max: Number.NaN })).toBeUndefined();
    expect(magnitude(undefined)).toBeUndefined();
  });

  it('drops monitor counts next to an absorption coefficient', () => {
    const aux = [
      { name: 'I0', range: { min: 9.5e4, max: 1.1e5 } },
      { name: 'mu_ref', range: { min: 0.1, max: 1.2 } },
    ];
    expect(auxiliariesToDraw(mu, aux)).toEqual(['mu_ref']);
  });

  it('keeps magnitudes within a factor of ten either way, boundaries included', () => {
    // reference magnitude 1.5: allowed 0.15 … 15
    const aux = [
      { name: 'at15', range: { min: 0, max: 15 } },
      { name: 'over', range: { min: 0, max: 15.01 } },
      { name: 'at0.15', range: { min: 0, max: 0.15 } },
      { name: 'under', range: { min: 0, max: 0.149 } },
      { name: 'negative', range: { min: -16, max: 1 } }, // |−16| > 15
    ];
    expect(auxiliariesToDraw(mu, aux)).toEqual(['at15', 'at0.15']);
  });

  it('keeps signals of unknown range, and everything when the signal is unknown or zero', () => {
    const aux = [
      { name: 'unknown', range: undefined },
      { name: 'nan', range: { min: Number.NaN, max: 1 } },
      { name: 'huge', range: { min: 0, max: 1e9 } },
    ];
    expect(auxiliariesToDraw(mu, aux)).toEqual(['unknown', 'nan']);
    expect(auxiliariesToDraw(undefined, aux)).toEqual(['unknown', 'nan', 'huge']);
    expect(auxiliariesToDraw({ min: 0, max: 0 }, aux)).toEqual(['unknown', 'nan', 'huge']);
  });
});
