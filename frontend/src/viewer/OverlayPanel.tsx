// Overlay: several 1-D datasets of the open file on one plot against a chosen x axis
// (another 1-D dataset of the same length, or the index), with a legend and a CSV export.
// H5Web 17 plots one signal (plus NeXus auxiliaries) at a time (h5web #1734), so this view
// is ours, drawn by @h5web/lib's LineVis with the extra curves as auxiliaries.
import { type Domain, getCombinedDomain, getDomain, LineVis } from '@h5web/lib';
import ndarray from 'ndarray';
import { type CSSProperties, useEffect, useMemo, useState } from 'react';

import { fetchSeries, listSeries, overlayCSV, type Series, type SeriesValues } from './overlay';
import type { OverlayState } from './viewState';

interface Props {
  apiURL: string;
  file: string;
  state: OverlayState;
  onChange: (state: OverlayState) => void;
}

/** Curve colours: LineVis draws the first curve in MAIN, auxiliaries in AUX order. */
const MAIN = 'darkblue';
const AUX = [
  'orangered',
  'forestgreen',
  'mediumorchid',
  'darkgoldenrod',
  'deepskyblue',
  'crimson',
  'olive',
  'teal',
  'saddlebrown',
  'hotpink',
];
export const MAX_CURVES = AUX.length + 1;

type Values = SeriesValues;

function stem(file: string): string {
  const name = file.slice(file.lastIndexOf('/') + 1);
  return name.includes('.') ? name.slice(0, name.lastIndexOf('.')) : name;
}

function download(text: string, name: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function OverlayPanel(props: Props) {
  const { apiURL, file, state, onChange } = props;
  const [series, setSeries] = useState<Series[]>();
  const [listError, setListError] = useState<string>();
  const [values, setValues] = useState<Record<string, Values>>({});
  const [loadError, setLoadError] = useState<string>();
  const [filter, setFilter] = useState('');

  useEffect(() => {
    let live = true;
    setSeries(undefined);
    setValues({});
    listSeries(apiURL, file).then(
      (s) => live && setSeries(s),
      (err: unknown) => live && setListError(err instanceof Error ? err.message : String(err)),
    );
    return () => {
      live = false;
    };
  }, [apiURL, file]);

  // Fetch the values of every dataset on the plot once.
  const wanted = useMemo(() => [state.x, ...state.y].filter(Boolean), [state]);
  useEffect(() => {
    const missing = wanted.filter((p) => !(p in values));
    if (missing.length === 0) {
      return undefined;
    }
    let live = true;
    Promise.all(missing.map((p) => fetchSeries(apiURL, file, p))).then(
      (arrays) => {
        if (live) {
          setValues((old) => ({
            ...old,
            ...Object.fromEntries(missing.map((p, i) => [p, arrays[i]])),
          }));
        }
      },
      (err: unknown) => live && setLoadError(err instanceof Error ? err.message : String(err)),
    );
    return () => {
      live = false;
    };
  }, [apiURL, file, wanted, values]);

  const byPath = useMemo(() => new Map((series ?? []).map((s) => [s.path, s])), [series]);
  // Curves and x axis must all have the length of the first one chosen.
  const length = byPath.get(state.x || state.y[0] || '')?.length;
  const shown = useMemo(() => {
    const needle = filter.trim().toLowerCase();
    return (series ?? []).filter((s) => !needle || s.path.toLowerCase().includes(needle));
  }, [series, filter]);

  const loaded = state.y.filter((p) => values[p]);
  const ready = loaded.length === state.y.length && (!state.x || values[state.x]);
  // A link may name datasets of different lengths: plot those as long as the first one.
  const n = loaded.length > 0 ? values[loaded[0]].length : 0;
  const curves = loaded.filter((p) => values[p].length === n);
  const xValues: Values | undefined =
    state.x && values[state.x]?.length === n ? values[state.x] : undefined;
  const dropped = loaded.filter((p) => !curves.includes(p));
  if (state.x && ready && !xValues) {
    dropped.push(state.x);
  }
  const domain = useMemo<Domain | undefined>(
    () => getCombinedDomain(curves.map((p) => getDomain(values[p]))),
    [curves, values],
  );

  function toggleY(path: string, on: boolean) {
    const y = on ? [...state.y, path] : state.y.filter((p) => p !== path);
    onChange({ ...state, y });
  }

  function exportCSV() {
    const x = xValues
      ? { label: state.x, values: xValues }
      : { label: 'index', values: Float64Array.from({ length: n }, (_, i) => i) };
    download(
      overlayCSV(
        x,
        curves.map((p) => ({ label: p, values: values[p] })),
      ),
      `${stem(file)}_overlay.csv`,
    );
  }

  const style = {
    '--h5w-line--color': MAIN,
    '--h5w-line--colorAux': AUX.join(', '),
  } as CSSProperties;

  return (
    <div className="bd-overlay" data-testid="overlay">
      <aside className="bd-overlay-list">
        <p className="bd-hint">
          Tick the 1-D datasets to plot (same length) and pick the x axis.
        </p>
        <input
          type="search"
          placeholder="Filter datasets"
          className="bd-filter"
          value={filter}
          onChange={(e) => setFilter(e.target.value)}
        />
        {listError && <p className="bd-error">{listError}</p>}
        {!series && !listError && <p>Looking for 1-D datasets…</p>}
        {series && series.length === 0 && <p>This file has no 1-D numeric datasets.</p>}
        {series && (
          <table className="bd-series">
            <thead>
              <tr>
                <th title="x axis">x</th>
                <th title="plotted">y</th>
                <th>dataset</th>
                <th>n</th>
              </tr>
            </thead>
            <tbody>
              <tr>
                <td>
                  <input
                    type="radio"
                    name="bd-overlay-x"
                    aria-label="x axis: index"
                    checked={!state.x}
                    onChange={() => onChange({ ...state, x: '' })}
                  />
                </td>
                <td />
                <td colSpan={2}>
                  <em>index</em>
                </td>
              </tr>
              {shown.map((s) => {
                const fits = length === undefined || s.length === length;
                const isY = state.y.includes(s.path);
                return (
                  <tr key={s.path} className={fits ? undefined : 'bd-other'}>
                    <td>
                      <input
                        type="radio"
                        name="bd-overlay-x"
                        aria-label={`x axis: ${s.path}`}
                        checked={state.x === s.path}
                        disabled={!fits && state.y.length > 0}
                        onChange={() => onChange({ ...state, x: s.path })}
                      />
                    </td>
                    <td>
                      <input
                        type="checkbox"
                        aria-label={`plot ${s.path}`}
                        checked={isY}
                        disabled={(!fits && !isY) || (!isY && state.y.length >= MAX_CURVES)}
                        onChange={(e) => toggleY(s.path, e.target.checked)}
                      />
                    </td>
                    <td className="bd-series-path">{s.path}</td>
                    <td>{s.length}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </aside>
      <section className="bd-overlay-plot" style={style}>
        <div className="bd-controls">
          <ul className="bd-legend" data-testid="overlay-legend">
            {curves.map((p, i) => (
              <li key={p} data-path={p}>
                <span
                  className="bd-swatch"
                  style={{ background: i === 0 ? MAIN : AUX[(i - 1) % AUX.length] }}
                />
                {p}
              </li>
            ))}
          </ul>
          <button
            type="button"
            disabled={!ready || curves.length === 0}
            onClick={exportCSV}
            data-testid="overlay-csv"
          >
            Export CSV
          </button>
        </div>
        {loadError && <p className="bd-error">{loadError}</p>}
        {dropped.length > 0 && (
          <p className="bd-error">
            Not {n} values long, left out: {dropped.join(', ')}
          </p>
        )}
        {curves.length === 0 && <p className="bd-empty">Tick one or more datasets on the left.</p>}
        {ready && curves.length > 0 && (
          <div className="bd-player-plot">
            <LineVis
              dataArray={ndarray(values[curves[0]])}
              domain={domain}
              abscissaParams={{ value: xValues, label: xValues ? state.x : 'index' }}
              ordinateLabel={curves.length === 1 ? curves[0] : undefined}
              title={`${curves.length} curve${curves.length > 1 ? 's' : ''}`}
              auxiliaries={curves.slice(1).map((p) => ({ array: ndarray(values[p]), label: p }))}
            />
          </div>
        )}
      </section>
    </div>
  );
}

export default OverlayPanel;
