import { describe, expect, it } from 'vitest';

import {
  axisLabel,
  axisNames,
  decimalsFor,
  frameAxisText,
  shownEdges,
  withUnits,
} from './nexusAxes';

// NXdata (NeXus v2014 axes): @axes lists one name per dimension of @signal, "." for a
// dimension without one; @AXISNAME_indices, where present, gives the dimension(s) an axis
// belongs to and wins over the position in @axes.
describe('NeXus axis of each dimension', () => {
  it('takes the position in @axes, "." meaning none', () => {
    expect(axisNames({ axes: ['rotation_angle', '.', '.'] }, 3)).toEqual([
      'rotation_angle',
      undefined,
      undefined,
    ]);
  });

  it('lets @AXISNAME_indices override the position', () => {
    expect(axisNames({ axes: ['x', 'y'], x_indices: 1, y_indices: 0 }, 2)).toEqual(['y', 'x']);
    // an array of indices (a multi-dimensional axis): its first dimension
    expect(axisNames({ axes: ['t', '.', '.'], t_indices: [0] }, 3)[0]).toBe('t');
  });

  it('places axes by their indices when @axes is shorter than the rank', () => {
    expect(axisNames({ axes: ['energy'], energy_indices: 2 }, 3)).toEqual([
      undefined,
      undefined,
      'energy',
    ]);
    // without indices a short @axes says nothing about which dimension is meant
    expect(axisNames({ axes: ['energy'] }, 3)).toEqual([undefined, undefined, undefined]);
  });

  it('reads the older string form and ignores indices out of range', () => {
    expect(axisNames({ axes: 'angle:y:x' }, 3)).toEqual(['angle', 'y', 'x']);
    expect(axisNames({ axes: ['a', 'b'], a_indices: 5 }, 2)).toEqual(['a', 'b']);
    expect(axisNames({}, 2)).toEqual([undefined, undefined]);
  });
});

describe('edges of the shown pixels', () => {
  it('puts edges half way between centres, the outer ones half a step out', () => {
    expect([...shownEdges([0, 1, 2, 3], 4, 1, 4)]).toEqual([-0.5, 0.5, 1.5, 2.5, 3.5]);
  });

  it('takes every factor-th edge of a binned axis, the last bin short', () => {
    // centres 10…50, edges 5 15 25 35 45 55; 5 pixels in bins of 2 → 3 shown
    expect([...shownEdges([10, 20, 30, 40, 50], 5, 2, 3)]).toEqual([5, 25, 45, 55]);
  });

  it('uses n + 1 values as edges, and pixel indices without a fitting axis', () => {
    expect([...shownEdges([0, 2, 4], 2, 1, 2)]).toEqual([0, 2, 4]);
    expect([...shownEdges(undefined, 5, 2, 3)]).toEqual([0, 2, 4, 5]);
    expect([...shownEdges([1, 2, 3], 5, 1, 5)]).toEqual([0, 1, 2, 3, 4, 5]);
    expect([...shownEdges([7], 1, 1, 1)]).toEqual([6.5, 7.5]);
  });
});

describe('axis text', () => {
  it('writes degrees as a sign and other units after a space', () => {
    expect(withUnits('24.0', 'deg')).toBe('24.0°');
    expect(withUnits('24.0', ' Degrees ')).toBe('24.0°');
    expect(withUnits('1.25', 'mm')).toBe('1.25 mm');
    expect(withUnits('3', undefined)).toBe('3');
    expect(axisLabel({ name: 'omega', values: [], units: 'degree' })).toBe('omega (°)');
    expect(axisLabel({ name: 'z', values: [], units: 'mm', longName: 'Height' })).toBe('Height');
    expect(axisLabel({ name: 'z', values: [] })).toBe('z');
  });

  it('uses the fewest decimals that write the step exactly (1 to 6)', () => {
    expect(decimalsFor([0, 1])).toBe(1);
    expect(decimalsFor([0, 0.25])).toBe(2);
    expect(decimalsFor([0.1, 0.2])).toBe(1);
    expect(decimalsFor([0, 1e-9])).toBe(6);
    expect(decimalsFor([5])).toBe(1);
  });

  it('names the value of the played frame', () => {
    const angle = { name: 'rotation_angle', values: [0, 1.5, 3], units: 'degrees' };
    expect(frameAxisText(angle, 2)).toBe('rotation_angle = 3.0°');
    expect(frameAxisText(angle, 3)).toBeUndefined();
    expect(frameAxisText(undefined, 0)).toBeUndefined();
  });
});
