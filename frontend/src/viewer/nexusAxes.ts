// NeXus axes of an image stack for the frame player: which axis dataset belongs to which
// dimension (@axes, @AXISNAME_indices), how its values become the edges of the shown
// (possibly binned) pixels, and how an axis value is written ("rotation_angle = 24.0°").

export interface AxisInfo {
  name: string;
  /** One value per index along the dimension (pixel centres), or one more (edges). */
  values: number[];
  units?: string;
  longName?: string;
}

function names(value: unknown): string[] {
  if (typeof value === 'string') {
    return value.split(/[\s,:]+/u).filter(Boolean);
  }
  return Array.isArray(value) ? value.map(String) : [];
}

function index(value: unknown): number | undefined {
  const first: unknown = Array.isArray(value) ? value[0] : value;
  return typeof first === 'number' && Number.isInteger(first) ? first : undefined;
}

/**
 * The axis dataset name of each of the `ndim` dimensions of an NXdata signal, from the
 * group's attributes: `@AXISNAME_indices` where given, else the position in `@axes`
 * ("." for none). Undefined where a dimension has no axis.
 */
export function axisNames(attrs: Record<string, unknown>, ndim: number): (string | undefined)[] {
  const out: (string | undefined)[] = Array.from({ length: ndim }, () => undefined);
  const listed = names(attrs.axes);
  const placed = new Set<string>();
  for (const name of listed) {
    const dim = index(attrs[`${name}_indices`]);
    if (name !== '.' && dim !== undefined && dim >= 0 && dim < ndim) {
      out[dim] = name;
      placed.add(name);
    }
  }
  if (listed.length === ndim) {
    listed.forEach((name, dim) => {
      if (name !== '.' && !placed.has(name) && out[dim] === undefined) {
        out[dim] = name;
      }
    });
  }
  return out;
}

/** Whether `values` can label a dimension of `n` pixels (centres or edges). */
export function fitsDimension(values: ArrayLike<number>, n: number): boolean {
  return values.length === n || values.length === n + 1;
}

/**
 * Edges of the `count` shown pixels along a dimension of `n` pixels binned by `factor`, in
 * axis units: `values` are the pixel centres (edges half way between, the outer ones half a
 * step out) or already the n + 1 edges; without values, pixel indices.
 */
export function shownEdges(
  values: ArrayLike<number> | undefined,
  n: number,
  factor: number,
  count: number,
): Float64Array {
  let pixelEdges: ArrayLike<number>;
  if (!values || !fitsDimension(values, n)) {
    pixelEdges = Float64Array.from({ length: n + 1 }, (_, i) => i);
  } else if (values.length === n + 1) {
    pixelEdges = values;
  } else if (n === 1) {
    pixelEdges = [values[0] - 0.5, values[0] + 0.5];
  } else {
    const e = new Float64Array(n + 1);
    for (let i = 1; i < n; i += 1) {
      e[i] = (values[i - 1] + values[i]) / 2;
    }
    e[0] = values[0] - (values[1] - values[0]) / 2;
    e[n] = values[n - 1] + (values[n - 1] - values[n - 2]) / 2;
    pixelEdges = e;
  }
  return Float64Array.from({ length: count + 1 }, (_, i) => pixelEdges[Math.min(n, i * factor)]);
}

const DEGREES = new Set(['degree', 'degrees', 'deg', '°']);

/** "24.0°", "1.25 mm", "3": the unit written after the value. */
export function withUnits(text: string, units: string | undefined): string {
  if (!units) {
    return text;
  }
  return DEGREES.has(units.trim().toLowerCase()) ? `${text}°` : `${text} ${units}`;
}

/** Axis title: the @long_name, or the name with its units in brackets. */
export function axisLabel(axis: AxisInfo): string {
  if (axis.longName) {
    return axis.longName;
  }
  if (!axis.units) {
    return axis.name;
  }
  const units = DEGREES.has(axis.units.trim().toLowerCase()) ? '°' : axis.units;
  return `${axis.name} (${units})`;
}

/**
 * Decimals that tell neighbouring values of an axis apart: the fewest (at least one, at
 * most six) that write its typical step exactly.
 */
export function decimalsFor(values: ArrayLike<number>): number {
  const step = values.length > 1 ? Math.abs(values[1] - values[0]) : 0;
  let decimals = 1;
  while (decimals < 6 && step > 0) {
    const scaled = step * 10 ** decimals;
    // a step that rounds to 0 is not written at all (1e-9 is not "0.0" apart)
    if (
      Math.round(scaled) >= 1 &&
      Math.abs(scaled - Math.round(scaled)) < 1e-6 * Math.max(1, scaled)
    ) {
      break;
    }
    decimals += 1;
  }
  return decimals;
}

/** "rotation_angle = 24.0°" for frame `k` of the played axis; undefined without a value. */
export function frameAxisText(axis: AxisInfo | undefined, k: number): string | undefined {
  const value = axis?.values[k];
  if (axis === undefined || value === undefined || !Number.isFinite(value)) {
    return undefined;
  }
  return `${axis.name} = ${withUnits(value.toFixed(decimalsFor(axis.values)), axis.units)}`;
}
