// Auxiliary signals that would flatten the signal of a NeXus line.
//
// H5Web's "NX Line" draws every `@auxiliary_signals` dataset on the signal's y axis, so a
// XANES group that lists the monitor counts I0 (~1e5) next to μ (~0..1.5) shows μ as a flat
// line. NeXus means auxiliary signals to be plotted with the signal, in the same units; a
// beamline file that lists monitors anyway is shown with only the auxiliary signals whose
// values fit the signal's scale. The others stay in the tree and in the Overlay view.

export interface ValueRange {
  min: number;
  max: number;
}

/** Largest ratio of magnitudes of an auxiliary signal and the signal drawn together. */
export const MAX_SCALE_RATIO = 10;

/** Largest absolute value of a range; undefined when unknown. */
export function magnitude(range: ValueRange | undefined): number | undefined {
  if (!range || !Number.isFinite(range.min) || !Number.isFinite(range.max)) {
    return undefined;
  }
  return Math.max(Math.abs(range.min), Math.abs(range.max));
}

/**
 * The auxiliary signals to draw with the signal, in their order: those whose magnitude
 * (largest absolute value) is within a decade of the signal's (MAX_SCALE_RATIO either way).
 * An auxiliary signal of unknown range is kept (H5Web shows it as it would anyway), as are
 * all when the signal's range is unknown or zero.
 */
export function auxiliariesToDraw(
  signal: ValueRange | undefined,
  auxiliaries: { name: string; range: ValueRange | undefined }[],
): string[] {
  const reference = magnitude(signal);
  if (!reference) {
    return auxiliaries.map((a) => a.name);
  }
  return auxiliaries
    .filter(({ range }) => {
      const size = magnitude(range);
      return (
        size === undefined ||
        (size <= MAX_SCALE_RATIO * reference && size * MAX_SCALE_RATIO >= reference)
      );
    })
    .map((a) => a.name);
}
