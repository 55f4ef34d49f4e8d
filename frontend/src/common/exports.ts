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

/** Links of our own toolbar: PNG as shown by the server, and an HDF5 subset. */
export function pngURL(
  apiURL: string,
  filepath: string,
  path: string,
  downsample?: number[],
): string {
  const params = new URLSearchParams({ file: filepath, path, format: 'png' });
  if (downsample) {
    // A binned image is rendered at its displayed size, as the server can hold it.
    params.set('downsample', downsample.join('x'));
  }
  return `${apiURL}/data?${params.toString()}`;
}

export function subsetURL(apiURL: string, filepath: string, path: string): string {
  const params = new URLSearchParams({ file: filepath });
  params.append('paths', path);
  return `${apiURL}/subset?${params.toString()}`;
}
