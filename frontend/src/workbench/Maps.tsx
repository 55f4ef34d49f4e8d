// After the map fit: the elemental maps side by side (HeatmapVis), a ROI map from an energy
// window, and exports of every map (TIFF/PNG/CSV written by the server from the file).
import { HeatmapVis } from '@h5web/lib';
import ndarray from 'ndarray';
import { useEffect, useMemo, useState } from 'react';

import { getJSON, h5DataURL } from './api';

export function MapView(props: { title: string; values: number[]; shape: [number, number];
  testid: string; children?: React.ReactNode }) {
  const { title, values, shape, testid, children } = props;
  const { array, domain } = useMemo(() => {
    const data = Float32Array.from(values, (v) => (Number.isFinite(v) ? v : Number.NaN));
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of data) {
      if (Number.isFinite(v)) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    }
    if (!Number.isFinite(lo)) [lo, hi] = [0, 1];
    if (hi <= lo) hi = lo + 1;
    return { array: ndarray(data, shape), domain: [lo, hi] as [number, number] };
  }, [values, shape]);
  return (
    <figure className="bd-wb-map" data-testid={testid}>
      <figcaption>{title}</figcaption>
      <div className="bd-wb-map-vis">
        <HeatmapVis dataArray={array} domain={domain} colorMap="Viridis" aspect="equal"
                    title={title} />
      </div>
      {children}
    </figure>
  );
}

function nestedToFlat(value: unknown): number[] {
  if (Array.isArray(value)) return value.flatMap((v) => nestedToFlat(v));
  return [typeof value === 'number' ? value : Number.NaN];
}

export function ElementMaps(props: { proposal: string; file: string;
  maps: Record<string, string> }) {
  const { proposal, file, maps } = props;
  const names = Object.keys(maps);
  const [shown, setShown] = useState<string[]>(names.filter((n) => n.startsWith('Fe ')).length
    ? names.filter((n) => n.startsWith('Fe ')) : names.slice(0, 3));
  const [data, setData] = useState<Record<string, { values: number[]; shape: [number, number] }>>({});
  const [error, setError] = useState('');

  useEffect(() => {
    for (const name of shown) {
      if (data[name]) continue;
      getJSON<unknown>(h5DataURL(proposal, file, maps[name], 'json'))
        .then((value) => {
          const rows = Array.isArray(value) ? value.length : 1;
          const flat = nestedToFlat(value);
          setData((d) => ({ ...d, [name]: { values: flat, shape: [rows, flat.length / rows] } }));
        })
        .catch((err: Error) => setError(`${name}: ${err.message}`));
    }
  }, [shown, data, proposal, file, maps]);

  return (
    <section className="bd-wb-section" data-testid="element-maps">
      <h3>Elemental maps</h3>
      <div className="bd-wb-chips">
        {names.map((n) => (
          <label key={n} className="bd-wb-chip">
            <input type="checkbox" checked={shown.includes(n)} data-map={n}
                   onChange={() => setShown(shown.includes(n) ? shown.filter((s) => s !== n)
                     : [...shown, n])} />
            {n}
          </label>
        ))}
      </div>
      {error && <p className="bd-wb-error">{error}</p>}
      <div className="bd-wb-maps">
        {shown.map((n) => {
          const d = data[n];
          return d ? (
            <MapView key={n} title={n} values={d.values} shape={d.shape}
                     testid={`map-${n.replace(' ', '_')}`}>
              <p className="bd-wb-exports">
                {(['tiff', 'png', 'csv'] as const).map((fmt) => (
                  <a key={fmt} href={h5DataURL(proposal, file, maps[n], fmt)} download
                     data-testid={`export-${n.replace(' ', '_')}-${fmt}`}>
                    {fmt.toUpperCase()}
                  </a>
                ))}
              </p>
            </MapView>
          ) : (
            <p key={n} className="muted">loading {n}…</p>
          );
        })}
      </div>
    </section>
  );
}
