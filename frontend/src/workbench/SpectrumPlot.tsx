// The spectrum and its fit (H5Web's LineVis): data, fit, background and each group's
// contribution, log or linear; residuals in units of σ below. Hovering names the lines near
// the cursor (/api/xrf/identify); a click hands the channel to the calibration panel;
// Shift + drag on the energy axis draws an energy window (ROI).
import {
  AxialSelectionTool,
  CurveType,
  LineVis,
  ScaleType,
  SvgElement,
  SvgRect,
} from '@h5web/lib';
import ndarray from 'ndarray';
import { useEffect, useMemo, useRef, useState } from 'react';

import { getJSON, type LineCandidate } from './api';

/** What LineVis hands to renderTooltip (its type is not exported). */
interface TooltipData {
  xi: number;
  x: number;
  abscissa: number;
}

// Colours of the auxiliary curves (fit, background, groups), handed to H5Web through its CSS
// variable so the legend below the plot can name them.
const AUX_COLOURS = ['#d62728', '#7f7f7f', '#1f77b4', '#2ca02c', '#9467bd', '#8c564b',
  '#e377c2', '#17becf', '#bcbd22', '#ff7f0e'];

const lineCache = new Map<string, LineCandidate[]>();

/** Lines within 50 eV of an energy, fetched once per 10 eV step. */
function NearbyLines(props: { energy: number; excitation: number | null }) {
  const { energy, excitation } = props;
  const key = energy.toFixed(2);
  const [lines, setLines] = useState<LineCandidate[] | undefined>(lineCache.get(key));
  useEffect(() => {
    if (lineCache.has(key)) {
      setLines(lineCache.get(key));
      return undefined;
    }
    const timer = window.setTimeout(() => {
      const params = new URLSearchParams({ energy: key, tolerance: '0.05', limit: '5' });
      if (excitation) params.set('excitation', String(excitation));
      getJSON<{ lines: LineCandidate[] }>(`/api/xrf/identify?${params.toString()}`)
        .then((answer) => {
          lineCache.set(key, answer.lines);
          setLines(answer.lines);
        })
        .catch(() => setLines([]));
    }, 120);
    return () => window.clearTimeout(timer);
  }, [key, excitation]);
  if (!lines) return <div className="muted">…</div>;
  if (!lines.length) return <div className="muted">no line within 50 eV</div>;
  return (
    <ul className="bd-wb-lines" data-testid="nearby-lines">
      {lines.map((c) => (
        <li key={`${c.element}${c.line}`}>
          {c.element} {c.group} {c.line} {c.energy.toFixed(3)} keV
        </li>
      ))}
    </ul>
  );
}

export interface Curves {
  energy: number[];
  data: number[];
  fit?: number[];
  background?: number[];
  contributions?: Record<string, number[]>;
}

interface Props {
  curves: Curves;
  log: boolean;
  excitation: number | null;
  onPick?: (index: number, energy: number) => void;
  onWindow?: (emin: number, emax: number) => void;
}

function positive(values: number[], floor: number): Float64Array {
  return Float64Array.from(values, (v) => (Number.isFinite(v) && v > floor ? v : floor));
}

function SpectrumPlot(props: Props) {
  const { curves, log, excitation, onPick, onWindow } = props;
  const hovered = useRef<number | null>(null);
  const floor = log ? 0.5 : -Infinity;

  const { dataArray, auxiliaries, domain, abscissa } = useMemo(() => {
    const clean = (v: number[]) =>
      log ? positive(v, 0.5) : Float64Array.from(v, (x) => (Number.isFinite(x) ? x : 0));
    const data = clean(curves.data);
    const aux = [];
    if (curves.fit) aux.push({ label: 'fit', array: ndarray(clean(curves.fit)) });
    if (curves.background) {
      aux.push({ label: 'background', array: ndarray(clean(curves.background)) });
    }
    const groups = Object.entries(curves.contributions ?? {});
    // the strongest contributions first: a plot with 30 curves says nothing
    groups.sort((a, b) => Math.max(...b[1]) - Math.max(...a[1]));
    for (const [name, values] of groups.slice(0, 8)) {
      aux.push({ label: name, array: ndarray(clean(values)) });
    }
    let max = 0;
    for (const v of data) max = Math.max(max, v);
    let min = log ? 0.5 : 0;
    if (!log) for (const v of data) min = Math.min(min, v);
    return {
      dataArray: ndarray(data),
      auxiliaries: aux,
      domain: [min, Math.max(max * (log ? 2 : 1.05), min + 1)] as [number, number],
      abscissa: Float64Array.from(curves.energy),
    };
  }, [curves, log]);

  function tooltip(data: TooltipData) {
    hovered.current = data.xi;
    const energy = curves.energy[data.xi];
    return (
      <div className="bd-wb-tooltip" data-testid="spectrum-tooltip">
        <div>
          {energy.toFixed(3)} keV (channel {data.xi}): {Math.round(curves.data[data.xi])} counts
          {curves.fit ? `, fit ${curves.fit[data.xi].toFixed(1)}` : ''}
        </div>
        <NearbyLines energy={energy} excitation={excitation} />
      </div>
    );
  }

  const style = { '--h5w-line--colorAux': AUX_COLOURS.join(', ') } as React.CSSProperties;
  return (
    <>
    <div
      className="bd-wb-plot"
      style={style}
      data-testid="spectrum-plot"
      data-floor={floor}
      onClick={(evt) => {
        if (onPick && hovered.current !== null && !evt.shiftKey && !evt.ctrlKey) {
          // snap to the highest channel within ±5 of the click: the peak the user meant
          let best = hovered.current;
          const lo = Math.max(0, best - 5);
          const hi = Math.min(curves.data.length - 1, best + 5);
          for (let i = lo; i <= hi; i += 1) if (curves.data[i] > curves.data[best]) best = i;
          onPick(best, curves.energy[best]);
        }
      }}
    >
      <LineVis
        dataArray={dataArray}
        domain={domain}
        scaleType={log ? ScaleType.Log : ScaleType.Linear}
        curveType={CurveType.LineOnly}
        abscissaParams={{ value: abscissa, label: 'Energy (keV)' }}
        ordinateLabel="Counts"
        auxiliaries={auxiliaries}
        renderTooltip={tooltip}
        showGrid
        interactions={{ selectToZoom: { modifierKey: 'Control' }, xSelectToZoom: false,
                        ySelectToZoom: false }}
        testid="spectrum"
      >
        {onWindow && (
          <AxialSelectionTool
            axis="x"
            modifierKey="Shift"
            onValidSelection={(selection) => {
              const a = selection.data[0].x;
              const b = selection.data[1].x;
              onWindow(Math.min(a, b), Math.max(a, b));
            }}
          >
            {({ html }) => (
              <SvgElement>
                <SvgRect coords={html} fill="orange" fillOpacity={0.25} />
              </SvgElement>
            )}
          </AxialSelectionTool>
        )}
      </LineVis>
    </div>
    <p className="bd-wb-legend" data-testid="spectrum-legend">
      <span style={{ color: '#00008b' }}>— data</span>
      {auxiliaries.map((a, i) => (
        <span key={a.label} style={{ color: AUX_COLOURS[i % AUX_COLOURS.length] }}>— {a.label}</span>
      ))}
      <span className="muted">drag: pan · wheel: zoom · Ctrl+drag: zoom box · Shift+drag: energy window · click: calibration point</span>
    </p>
    </>
  );
}

export function ResidualPlot(props: { energy: number[]; data: number[]; fit: number[] }) {
  const { energy, data, fit } = props;
  const { values, domain } = useMemo(() => {
    // residuals in units of the Poisson σ of the model
    const r = Float64Array.from(data, (d, i) => (d - fit[i]) / Math.sqrt(Math.max(fit[i], 1)));
    let m = 1;
    for (const v of r) m = Math.max(m, Math.abs(v));
    return { values: ndarray(r), domain: [-m, m] as [number, number] };
  }, [data, fit]);
  return (
    <div className="bd-wb-residuals" data-testid="residual-plot">
      <LineVis
        dataArray={values}
        domain={domain}
        curveType={CurveType.LineOnly}
        abscissaParams={{ value: Float64Array.from(energy), label: 'Energy (keV)' }}
        ordinateLabel="(data − fit)/σ"
        showGrid
      />
    </div>
  );
}

export default SpectrumPlot;
