// Export menu of H5Web: which URL each "Export to …" entry downloads.
import { type GetExportURL, hasArrayShape, hasNumericType } from '@h5web/app';

import { type BinRegistry, fullSelection } from './downsample';

// Formats our /h5/data endpoint writes from the real data (see docs/h5-api.md).
const SERVER_FORMATS = new Set(['npy', 'tiff', 'csv']);

/**
 * CSV and JSON come from H5Web's own exporters when it has one: they write what is on screen,
 * including NeXus axes and errors. NPY and TIFF (and CSV otherwise) are written by the server
 * from the file, at full resolution even when the view is binned, with a file name that says
 * which file, dataset and slice they hold.
 */
export function makeGetExportURL(
  apiURL: string,
  filepath: string,
  registry: BinRegistry,
): GetExportURL {
  return (format, dataset, selection, builtInExporter) => {
    if (builtInExporter && (format === 'csv' || format === 'json')) {
      return async () => new Blob([builtInExporter()]);
    }
    if (!SERVER_FORMATS.has(format) || !hasArrayShape(dataset) || !hasNumericType(dataset)) {
      return builtInExporter ? async () => new Blob([builtInExporter()]) : undefined;
    }
    const info = registry.get(dataset.path);
    const real = info ? fullSelection(info, selection) : selection;
    const params = new URLSearchParams({ file: filepath, path: dataset.path, format });
    if (real) {
      params.set('selection', real);
    }
    return new URL(`${apiURL}/data?${params.toString()}`);
  };
}

// The PNG is drawn by the server as H5Web's heatmap shows the image. H5Web keeps its heatmap
// settings (colour map, scale, range, "Flip X/Y") in localStorage under this name; a view
// without saved settings is H5Web's default: Viridis, linear, row 0 at the bottom.
const HEATMAP_STORE = 'h5web:heatmap';
// H5Web's colour maps that matplotlib draws the same (d3's copies of matplotlib's and of
// ColorBrewer's); Rainbow, Sinebow, Warm, Cool and Cubehelix differ, so the PNG uses Viridis.
const SHARED_COLORMAPS = new Set(
  (
    'Viridis Inferno Magma Plasma Cividis Turbo Blues BrBG BuGn BuPu GnBu Greens Greys OrRd ' +
    'Oranges PRGn PiYG PuBu PuBuGn PuOr PuRd Purples RdBu RdGy RdPu RdYlBu RdYlGn Reds ' +
    'Spectral YlGn YlGnBu YlOrBr YlOrRd'
  ).split(' '),
);
const PNG_SCALES = new Set(['linear', 'log', 'sqrt']);
const VIEW_PARAMS = ['flip_y', 'flip_x', 'colormap', 'scale', 'vmin', 'vmax'];

interface HeatmapView {
  colorMap?: unknown;
  invertColorMap?: unknown;
  scaleType?: unknown;
  customDomain?: unknown;
  flipYAxis?: unknown;
  flipXAxis?: unknown;
}

function heatmapView(): HeatmapView {
  try {
    const saved = globalThis.localStorage?.getItem(HEATMAP_STORE);
    const parsed: unknown = saved ? JSON.parse(saved) : undefined;
    const state = (parsed as { state?: unknown } | undefined)?.state;
    return state && typeof state === 'object' ? (state as HeatmapView) : {};
  } catch {
    return {}; // no storage, or not ours to read: H5Web's defaults
  }
}

/** Sets the PNG parameters that make the picture match H5Web's heatmap as it is now. */
export function setHeatmapView(params: URLSearchParams, view: HeatmapView = heatmapView()): void {
  VIEW_PARAMS.forEach((name) => params.delete(name));
  if (view.flipYAxis === true) {
    params.set('flip_y', 'true'); // row 0 at the top
  }
  if (view.flipXAxis === true) {
    params.set('flip_x', 'true');
  }
  if (typeof view.colorMap === 'string' && SHARED_COLORMAPS.has(view.colorMap)) {
    params.set('colormap', view.colorMap + (view.invertColorMap === true ? '_r' : ''));
  }
  if (typeof view.scaleType === 'string' && PNG_SCALES.has(view.scaleType)) {
    params.set('scale', view.scaleType);
  }
  if (Array.isArray(view.customDomain)) {
    const [low, high] = view.customDomain as unknown[];
    if (typeof low === 'number' && Number.isFinite(low)) {
      params.set('vmin', String(low));
    }
    if (typeof high === 'number' && Number.isFinite(high)) {
      params.set('vmax', String(high));
    }
  }
}

/**
 * Links of our own toolbar: PNG as shown (one pixel per value, a colour bar beside it),
 * and an HDF5 subset. `selection` picks a 2-D slice of N-D data (e.g. `3` or `3,:,:`).
 */
export function pngURL(
  apiURL: string,
  filepath: string,
  path: string,
  downsample?: number[],
  selection?: string,
): string {
  const params = new URLSearchParams({ file: filepath, path, format: 'png' });
  if (selection) {
    params.set('selection', selection);
  }
  if (downsample) {
    // A binned image is rendered at its displayed size, as the server can hold it.
    params.set('downsample', downsample.join('x'));
  }
  setHeatmapView(params);
  return `${apiURL}/data?${params.toString()}`;
}

/**
 * A PNG link is rendered before the user toggles "Flip Y" or picks a colour map, so its
 * view parameters are read again at the moment it is clicked (before the browser follows it).
 */
function refreshPngLink(event: MouseEvent): void {
  const target = event.target instanceof Element ? event.target.closest('a[href]') : null;
  if (!(target instanceof HTMLAnchorElement)) {
    return;
  }
  const url = new URL(target.href, globalThis.location?.href);
  if (!url.pathname.endsWith('/data') || url.searchParams.get('format') !== 'png') {
    return;
  }
  setHeatmapView(url.searchParams);
  target.href = url.toString();
}

if (typeof document !== 'undefined') {
  document.addEventListener('click', refreshPngLink, true);
}

export function subsetURL(apiURL: string, filepath: string, path: string): string {
  const params = new URLSearchParams({ file: filepath });
  params.append('paths', path);
  return `${apiURL}/subset?${params.toString()}`;
}
