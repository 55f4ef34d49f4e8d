// Overlay: 1-D datasets of one or several files of the proposal on one plot, each curve
// against its file's chosen x axis (another 1-D dataset of that file of the same length, or
// the index), linear or log axes, with a legend and a CSV export.
// H5Web 17 plots one signal (plus NeXus auxiliaries, on a shared x) at a time (h5web #1734),
// so this view is ours, drawn with @h5web/lib's canvas and one DataCurve per curve.
import {
  DataCurve,
  DefaultInteractions,
  type Domain,
  extendDomain,
  getCombinedDomain,
  getDomain,
  ResetZoomButton,
  ScaleType,
  VisCanvas,
} from '@h5web/lib';
import { useEffect, useMemo, useState } from 'react';

import {
  type Column,
  fetchSeries,
  listSeries,
  nonPositive,
  overlayCSV,
  sameValues,
  type Series,
  type SeriesValues,
} from './overlay';
import OverlayFilePicker from './OverlayFilePicker';
import type { CurveRef, OverlayState } from './viewState';

interface Props {
  apiURL: string;
  browseURL: string;
  /** The file open in the viewer. */
  file: string;
  state: OverlayState;
  onChange: (state: OverlayState) => void;
}

/** Curve colours, in the order the curves were ticked. */
const COLOURS = [
  'darkblue',
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
export const MAX_CURVES = COLOURS.length;

type Values = SeriesValues;

function key(file: string, path: string): string {
  return `${file}\n${path}`;
}

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

function indexArray(n: number): Float64Array {
  return Float64Array.from({ length: n }, (_, i) => i);
}

interface Curve {
  ref: CurveRef;
  /** x dataset of the curve's file; '' = index. */
  xPath: string;
  x: Values;
  y: Values;
  colour: string;
}

function OverlayPanel(props: Props) {
  const { apiURL, browseURL, file, state, onChange } = props;
  const [listFile, setListFile] = useState(file);
  const [lists, setLists] = useState<Record<string, Series[]>>({});
  const [listError, setListError] = useState<string>();
  const [values, setValues] = useState<Record<string, Values>>({});
  const [loadError, setLoadError] = useState<string>();
  const [filter, setFilter] = useState('');

  useEffect(() => setListFile(file), [file]);

  const series = lists[listFile];
  useEffect(() => {
    if (series) {
      return undefined;
    }
    let live = true;
    setListError(undefined);
    listSeries(apiURL, listFile).then(
      (s) => live && setLists((old) => ({ ...old, [listFile]: s })),
      (err: unknown) => live && setListError(err instanceof Error ? err.message : String(err)),
    );
    return () => {
      live = false;
    };
  }, [apiURL, listFile, series]);

  // Fetch the values of every dataset on the plot (curves and their files' x axes) once.
  const wanted = useMemo(() => {
    const refs: CurveRef[] = [...state.y];
    for (const f of new Set(state.y.map((r) => r.file))) {
      if (state.x[f]) {
        refs.push({ file: f, path: state.x[f] });
      }
    }
    return refs;
  }, [state]);
  useEffect(() => {
    const missing = wanted.filter((r) => !(key(r.file, r.path) in values));
    if (missing.length === 0) {
      return undefined;
    }
    let live = true;
    Promise.all(missing.map((r) => fetchSeries(apiURL, r.file, r.path))).then(
      (arrays) => {
        if (live) {
          setValues((old) => ({
            ...old,
            ...Object.fromEntries(missing.map((r, i) => [key(r.file, r.path), arrays[i]])),
          }));
        }
      },
      (err: unknown) => live && setLoadError(err instanceof Error ? err.message : String(err)),
    );
    return () => {
      live = false;
    };
  }, [apiURL, wanted, values]);

  const ready = wanted.every((r) => values[key(r.file, r.path)]);
  const files = [...new Set(state.y.map((r) => r.file))];
  const manyFiles = files.length > 1 || (files.length === 1 && files[0] !== file);
  const label = (ref: CurveRef) => (manyFiles ? `${ref.file}:${ref.path}` : ref.path);

  // Every curve against its file's x axis; an x axis of another length leaves the curve out.
  const curves: Curve[] = [];
  const dropped: string[] = [];
  if (ready) {
    state.y.forEach((ref, i) => {
      const y = values[key(ref.file, ref.path)];
      const xPath = state.x[ref.file] ?? '';
      const x = xPath ? values[key(ref.file, xPath)] : indexArray(y.length);
      if (x.length === y.length) {
        curves.push({ ref, xPath, x, y, colour: COLOURS[i % COLOURS.length] });
      } else {
        dropped.push(`${label(ref)} (${y.length} values, x has ${x.length})`);
      }
    });
  }

  const xScale = state.logX ? ScaleType.Log : ScaleType.Linear;
  const yScale = state.logY ? ScaleType.Log : ScaleType.Linear;
  const xBounds = getCombinedDomain(curves.map((c) => getDomain(c.x, { scaleType: xScale })));
  const yBounds = getCombinedDomain(curves.map((c) => getDomain(c.y, { scaleType: yScale })));
  const xDomain: Domain | undefined = xBounds && extendDomain(xBounds, 0.01, xScale);
  const yDomain: Domain | undefined = yBounds && extendDomain(yBounds, 0.05, yScale);

  // What a log axis cannot show is masked (not drawn), and said.
  const masked: string[] = [];
  for (const c of curves) {
    const nx = state.logX ? nonPositive(c.x) : 0;
    const ny = state.logY ? nonPositive(c.y) : 0;
    if (nx > 0) {
      masked.push(`${nx} x ≤ 0 of ${label(c.ref)}`);
    }
    if (ny > 0) {
      masked.push(`${ny} y ≤ 0 of ${label(c.ref)}`);
    }
  }

  const xPaths = [...new Set(curves.map((c) => c.xPath))];
  const xLabel = xPaths.length === 1 ? xPaths[0] || 'index' : 'x (per file)';
  const sharedX = curves.every((c) => sameValues(c.x, curves[0].x));

  function toggleY(ref: CurveRef, on: boolean) {
    const same = (r: CurveRef) => r.file === ref.file && r.path === ref.path;
    const y = on ? [...state.y, ref] : state.y.filter((r) => !same(r));
    const x = { ...state.x };
    if (!on && ref.file !== file && !y.some((r) => r.file === ref.file)) {
      delete x[ref.file];
    }
    onChange({ ...state, x, y });
  }

  function setX(path: string) {
    const x = { ...state.x };
    if (path) {
      x[listFile] = path;
    } else {
      delete x[listFile];
    }
    onChange({ ...state, x });
  }

  function exportCSV() {
    const xColumn = (c: Curve): Column => ({
      label: c.xPath ? label({ file: c.ref.file, path: c.xPath }) : 'index',
      values: c.x,
    });
    const columns: Column[] = sharedX
      ? [
          // The same values in every file: one column, named by its path when all share it.
          { label: xPaths.length === 1 ? xPaths[0] || 'index' : 'x', values: curves[0].x },
          ...curves.map((c) => ({ label: label(c.ref), values: c.y })),
        ]
      : curves.flatMap((c) => [xColumn(c), { label: label(c.ref), values: c.y }]);
    download(overlayCSV(columns), `${stem(file)}_overlay.csv`);
  }

  // The list: datasets of the list file, with that file's x axis and curves.
  const listX = state.x[listFile] ?? '';
  const byPath = useMemo(() => new Map((series ?? []).map((s) => [s.path, s])), [series]);
  const listCurves = state.y.filter((r) => r.file === listFile);
  const length = byPath.get(listX || listCurves[0]?.path || '')?.length;
  const shown = useMemo(() => {
    const needle = filter.trim().toLowerCase();
    return (series ?? []).filter((s) => !needle || s.path.toLowerCase().includes(needle));
  }, [series, filter]);
  const otherFiles = [...new Set([file, ...files])].filter((f) => f !== listFile);

  return (
    <div className="bd-overlay" data-testid="overlay">
      <aside className="bd-overlay-list">
        <p className="bd-hint">
          Tick the 1-D datasets to plot and pick each file’s x axis; curves may come from
          several files of the proposal.
        </p>
        <OverlayFilePicker
          key={listFile}
          browseURL={browseURL}
          file={listFile}
          onPick={setListFile}
        />
        {otherFiles.length > 0 && (
          <p className="bd-hint">
            Also on the plot:{' '}
            {otherFiles.map((f) => (
              <button
                key={f}
                type="button"
                className="bd-link bd-chip"
                onClick={() => setListFile(f)}
              >
                {stem(f)}
              </button>
            ))}
          </p>
        )}
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
                <th title="x axis of this file's curves">x</th>
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
                    checked={!listX}
                    onChange={() => setX('')}
                  />
                </td>
                <td />
                <td colSpan={2}>
                  <em>index</em>
                </td>
              </tr>
              {shown.map((s) => {
                const fits = length === undefined || s.length === length;
                const isY = listCurves.some((r) => r.path === s.path);
                return (
                  <tr key={s.path} className={fits ? undefined : 'bd-other'}>
                    <td>
                      <input
                        type="radio"
                        name="bd-overlay-x"
                        aria-label={`x axis: ${s.path}`}
                        checked={listX === s.path}
                        disabled={!fits && listCurves.length > 0}
                        onChange={() => setX(s.path)}
                      />
                    </td>
                    <td>
                      <input
                        type="checkbox"
                        aria-label={`plot ${s.path}`}
                        checked={isY}
                        disabled={(!fits && !isY) || (!isY && state.y.length >= MAX_CURVES)}
                        onChange={(e) =>
                          toggleY({ file: listFile, path: s.path }, e.target.checked)
                        }
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
      <section className="bd-overlay-plot">
        <div className="bd-controls">
          <ul className="bd-legend" data-testid="overlay-legend">
            {curves.map((c) => (
              <li
                key={key(c.ref.file, c.ref.path)}
                data-file={c.ref.file}
                data-path={c.ref.path}
              >
                <span className="bd-swatch" style={{ background: c.colour }} />
                {stem(c.ref.file)} {c.ref.path}
              </li>
            ))}
          </ul>
          <label>
            <input
              type="checkbox"
              checked={state.logX}
              onChange={(e) => onChange({ ...state, logX: e.target.checked })}
              data-testid="overlay-log-x"
            />
            log x
          </label>
          <label>
            <input
              type="checkbox"
              checked={state.logY}
              onChange={(e) => onChange({ ...state, logY: e.target.checked })}
              data-testid="overlay-log-y"
            />
            log y
          </label>
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
          <p className="bd-error">Not as long as their file’s x axis, left out: {dropped.join(', ')}</p>
        )}
        {masked.length > 0 && (
          <p className="bd-player-note" data-testid="overlay-log-note">
            Not drawn on the log axis: {masked.join('; ')}.
          </p>
        )}
        {state.y.length === 0 && (
          <p className="bd-empty">Tick one or more datasets on the left.</p>
        )}
        {curves.length > 0 && (!xDomain || !yDomain) && (
          <p className="bd-error" data-testid="overlay-log-refused">
            Nothing to draw: no value is above 0 on the log {xDomain ? 'y' : 'x'} axis.
          </p>
        )}
        {curves.length > 0 && xDomain && yDomain && (
          <figure
            className="bd-player-plot bd-overlay-figure"
            data-testid="overlay-figure"
            data-scale-x={xScale}
            data-scale-y={yScale}
          >
            <VisCanvas
              title={`${curves.length} curve${curves.length > 1 ? 's' : ''}`}
              abscissaConfig={{
                visDomain: xDomain,
                showGrid: true,
                scaleType: xScale,
                isIndexAxis: xPaths.length === 1 && !xPaths[0],
                label: xLabel,
              }}
              ordinateConfig={{
                visDomain: yDomain,
                showGrid: true,
                scaleType: yScale,
                label: curves.length === 1 ? label(curves[0].ref) : undefined,
              }}
            >
              <DefaultInteractions />
              <ResetZoomButton />
              {curves.map((c) => (
                <DataCurve
                  key={`${key(c.ref.file, c.ref.path)}\n${yScale}\n${xScale}`}
                  abscissas={c.x}
                  ordinates={c.y}
                  color={c.colour}
                />
              ))}
            </VisCanvas>
          </figure>
        )}
      </section>
    </div>
  );
}

export default OverlayPanel;
