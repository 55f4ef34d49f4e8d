// The RGB correlator: three element maps as one image, each channel scaled on its own, and the
// scatter plot of two elements; pixels selected in the scatter plot (drag a box, or enter
// ranges) light up on the image.
import { ScatterVis, SelectionTool, SvgElement, SvgRect } from '@h5web/lib';
import ndarray from 'ndarray';
import { useEffect, useMemo, useRef, useState } from 'react';

import { postJSON, type RgbAnswer, type RgbChannel } from './api';

type Colour = 'red' | 'green' | 'blue';
const COLOURS: Colour[] = ['red', 'green', 'blue'];

interface Box {
  x: [number, number];
  y: [number, number];
}

function RgbImage(props: { answer: RgbAnswer; selected: Set<number> | null }) {
  const { answer, selected } = props;
  const canvas = useRef<HTMLCanvasElement>(null);
  const [rows, cols] = answer.shape;
  useEffect(() => {
    const ctx = canvas.current?.getContext('2d');
    if (!ctx) return;
    const image = ctx.createImageData(cols, rows);
    // map pixel i = row × cols + col; row 0 at the bottom, as H5Web draws the heatmaps
    for (let i = 0; i < rows * cols; i += 1) {
      const p = (rows - 1 - Math.floor(i / cols)) * cols + (i % cols);
      COLOURS.forEach((c, k) => {
        const v = answer.channels[c]?.scaled[i] ?? 0;
        image.data[4 * p + k] = Math.round(255 * (v ?? 0));
      });
      image.data[4 * p + 3] = 255;
      if (selected && !selected.has(i)) {
        // outside the selection: dimmed, so the selected pixels stand out
        for (let k = 0; k < 3; k += 1) image.data[4 * p + k] = Math.round(image.data[4 * p + k] * 0.25);
      }
      if (selected?.has(i)) {
        const v = Math.max(image.data[4 * p], image.data[4 * p + 1], image.data[4 * p + 2]);
        image.data[4 * p + 3] = 255;
        if (v < 96) for (let k = 0; k < 3; k += 1) image.data[4 * p + k] = 200;
      }
    }
    ctx.putImageData(image, 0, 0);
  }, [answer, selected, rows, cols]);
  return (
    <canvas ref={canvas} width={cols} height={rows} className="bd-wb-rgb-canvas"
            data-testid="rgb-image" data-selected={selected ? selected.size : 0} />
  );
}

function inBox(answer: RgbAnswer, box: Box): Set<number> {
  const out = new Set<number>();
  const { x, y } = answer.scatter;
  x.forEach((xv, i) => {
    const yv = y[i];
    if (xv !== null && yv !== null && xv >= box.x[0] && xv <= box.x[1] && yv >= box.y[0]
        && yv <= box.y[1]) {
      out.add(i);
    }
  });
  return out;
}

export function RgbCorrelator(props: { proposal: string; csrf: string; file: string;
  groups: string[] }) {
  const { proposal, csrf, file, groups } = props;
  // red: Fe when fitted (the usual first question), green and blue: the next groups
  const fe = groups.find((g) => g.startsWith('Fe '));
  const order = fe ? [fe, ...groups.filter((g) => g !== fe)] : groups;
  const pick = (n: number) => order[Math.min(n, order.length - 1)] ?? '';
  const [channels, setChannels] = useState<Record<Colour, RgbChannel>>({
    red: { group: pick(0), scaling: 'percentile', transform: 'linear' },
    green: { group: pick(1), scaling: 'percentile', transform: 'linear' },
    blue: { group: pick(2), scaling: 'percentile', transform: 'linear' },
  });
  // the scatter plot's two maps: red against green unless chosen otherwise
  const [pair, setPair] = useState<[string, string] | null>(null);
  const [answer, setAnswer] = useState<RgbAnswer | null>(null);
  const [error, setError] = useState('');
  const [box, setBox] = useState<Box | null>(null);

  useEffect(() => {
    setError('');
    postJSON<RgbAnswer>(`/api/proposals/${proposal}/xrf/rgb`, csrf,
      { file, ...channels, scatter: pair ?? [channels.red.group, channels.green.group] })
      .then(setAnswer)
      .catch((err: Error) => setError(err.message));
  }, [proposal, csrf, file, channels, pair]);

  const selected = useMemo(() => (answer && box ? inBox(answer, box) : null), [answer, box]);
  const scatter = useMemo(() => {
    if (!answer) return null;
    const keep = answer.scatter.x
      .map((_, i) => i)
      .filter((i) => answer.scatter.x[i] !== null && answer.scatter.y[i] !== null);
    const xs = Float64Array.from(keep, (i) => answer.scatter.x[i] as number);
    const ys = Float64Array.from(keep, (i) => answer.scatter.y[i] as number);
    const colour = Float64Array.from(keep, (i) => (selected?.has(i) ? 1 : 0));
    return { xs, ys, colour: ndarray(colour) };
  }, [answer, selected]);

  function setChannel(colour: Colour, patch: Partial<RgbChannel>) {
    setChannels({ ...channels, [colour]: { ...channels[colour], ...patch } });
  }

  return (
    <section className="bd-wb-section" data-testid="rgb-correlator">
      <h3>RGB correlator</h3>
      <div className="bd-wb-row">
        {COLOURS.map((c) => (
          <fieldset key={c} className={`bd-wb-rgb-channel ${c}`}>
            <legend>{c}</legend>
            <select value={channels[c].group} data-testid={`rgb-${c}`}
                    onChange={(e) => setChannel(c, { group: e.target.value })}>
              {groups.map((g) => <option key={g}>{g}</option>)}
            </select>
            <select value={channels[c].scaling} data-testid={`rgb-${c}-scaling`}
                    onChange={(e) => setChannel(c, { scaling: e.target.value as RgbChannel['scaling'] })}>
              <option value="percentile">1–99 %</option>
              <option value="minmax">min–max</option>
            </select>
            <select value={channels[c].transform}
                    onChange={(e) => setChannel(c, { transform: e.target.value as RgbChannel['transform'] })}>
              <option value="linear">linear</option>
              <option value="sqrt">sqrt</option>
              <option value="log">log</option>
            </select>
          </fieldset>
        ))}
      </div>
      <div className="bd-wb-row">
        <span>Scatter plot:</span>
        {([0, 1] as const).map((k) => (
          <select key={k} data-testid={`scatter-${k ? 'y' : 'x'}`}
                  value={(pair ?? [channels.red.group, channels.green.group])[k]}
                  onChange={(e) => {
                    const next: [string, string] = [...(pair ?? [channels.red.group, channels.green.group])] as [string, string];
                    next[k] = e.target.value;
                    setPair(next);
                    setBox(null);
                  }}>
            {groups.map((g) => <option key={g}>{g}</option>)}
          </select>
        ))}
      </div>
      {error && <p className="bd-wb-error">{error}</p>}
      {answer && scatter && (
        <div className="bd-wb-rgb">
          <RgbImage answer={answer} selected={selected} />
          <div className="bd-wb-scatter" data-testid="scatter-plot">
            <ScatterVis
              abscissaParams={{ value: scatter.xs, label: answer.scatter.x_group }}
              ordinateParams={{ value: scatter.ys, label: answer.scatter.y_group }}
              dataArray={scatter.colour}
              domain={[0, 1]}
              colorMap="Viridis"
              size={5}
              title={`${answer.scatter.y_group} vs ${answer.scatter.x_group}, r = ${(answer.scatter.pearson_r ?? NaN).toFixed(3)}`}
              interactions={{ selectToZoom: { modifierKey: 'Control' }, xSelectToZoom: false,
                              ySelectToZoom: false }}
            >
              <SelectionTool
                modifierKey="Shift"
                onValidSelection={(sel) => {
                  const [a, b] = sel.data;
                  setBox({ x: [Math.min(a.x, b.x), Math.max(a.x, b.x)],
                           y: [Math.min(a.y, b.y), Math.max(a.y, b.y)] });
                }}
              >
                {({ html }) => (
                  <SvgElement>
                    <SvgRect coords={html} fill="white" fillOpacity={0.3} stroke="black" />
                  </SvgElement>
                )}
              </SelectionTool>
            </ScatterVis>
          </div>
        </div>
      )}
      <div className="bd-wb-row">
        <span className="muted">Shift + drag in the scatter plot selects pixels, or:</span>
        {(['x', 'y'] as const).map((axis) => (
          <span key={axis}>
            {axis === 'x' ? answer?.scatter.x_group : answer?.scatter.y_group}{' '}
            <input type="number" step="any" size={6} data-testid={`sel-${axis}-min`}
                   value={box ? box[axis][0] : ''}
                   onChange={(e) => setBox({ ...(box ?? { x: [-Infinity, Infinity], y: [-Infinity, Infinity] }),
                     [axis]: [Number(e.target.value), box ? box[axis][1] : Infinity] })} />
            –
            <input type="number" step="any" size={6} data-testid={`sel-${axis}-max`}
                   value={box && Number.isFinite(box[axis][1]) ? box[axis][1] : ''}
                   onChange={(e) => setBox({ ...(box ?? { x: [-Infinity, Infinity], y: [-Infinity, Infinity] }),
                     [axis]: [box ? box[axis][0] : -Infinity, Number(e.target.value)] })} />
          </span>
        ))}
        <button type="button" className="bd-link" onClick={() => setBox(null)}>clear</button>
        {selected && <span data-testid="selected-count">{selected.size} pixels selected</span>}
      </div>
    </section>
  );
}
