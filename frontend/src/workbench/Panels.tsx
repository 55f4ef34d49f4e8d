// The workbench's input panels: which spectrum, configuration files, calibration, background,
// detector and filters. Each edits the one configuration object (BeamDesk's TOML structure).
import { CurveType, LineVis } from '@h5web/lib';
import ndarray from 'ndarray';
import { useMemo, useState } from 'react';

import type { SpectrumSource, XrfConfig } from './api';

export type SourceMode = 'sum' | 'pixel' | 'region' | 'whole';

export interface SourceState {
  file: string;
  path: string;
  mode: SourceMode;
  pixel: [number, number];
  rows: [number, number];
  cols: [number, number];
}

export function toSource(s: SourceState): SpectrumSource {
  const base: SpectrumSource = { file: s.file, path: s.path || null };
  if (s.mode === 'pixel') return { ...base, pixel: s.pixel };
  if (s.mode === 'region') return { ...base, rows: s.rows, cols: s.cols };
  if (s.mode === 'whole' && !s.path) return { file: s.file };
  return base;
}

function NumberInput(props: {
  label: string;
  value: number | undefined;
  step?: number;
  testid?: string;
  onChange: (v: number) => void;
}) {
  const { label, value, step, testid, onChange } = props;
  const [text, setText] = useState<string | null>(null);
  return (
    <label className="bd-wb-field">
      <span>{label}</span>
      <input
        type="number"
        step={step ?? 'any'}
        value={text ?? (value === undefined ? '' : String(value))}
        data-testid={testid}
        onChange={(evt) => {
          setText(evt.target.value);
          const v = Number(evt.target.value);
          if (evt.target.value !== '' && Number.isFinite(v)) onChange(v);
        }}
        onBlur={() => setText(null)}
      />
    </label>
  );
}

export function SourcePanel(props: {
  source: SourceState;
  candidates: string[];
  mapShape: number[] | null;
  onChange: (s: SourceState) => void;
  onLoad: () => void;
  busy: boolean;
}) {
  const { source, candidates, mapShape, onChange, onLoad, busy } = props;
  const set = (patch: Partial<SourceState>) => onChange({ ...source, ...patch });
  return (
    <fieldset className="bd-wb-panel" data-testid="source-panel">
      <legend>Spectrum</legend>
      <label className="bd-wb-field wide">
        <span>File</span>
        <input value={source.file} data-testid="source-file" placeholder="raw/xrf/map.nxs"
               onChange={(e) => set({ file: e.target.value })} />
      </label>
      <label className="bd-wb-field wide">
        <span>HDF5 path</span>
        <input value={source.path} data-testid="source-path" placeholder="/entry/…/data (none for .mca)"
               list="bd-wb-candidates" onChange={(e) => set({ path: e.target.value })} />
        <datalist id="bd-wb-candidates">
          {candidates.map((c) => <option key={c} value={c} />)}
        </datalist>
      </label>
      <div className="bd-wb-radio" role="radiogroup" aria-label="Which spectrum">
        {(
          [
            ['sum', 'sum of the map'],
            ['pixel', 'one pixel'],
            ['region', 'a region'],
            ['whole', 'single spectrum (1-D, MCA)'],
          ] as [SourceMode, string][]
        ).map(([mode, label]) => (
          <label key={mode}>
            <input type="radio" name="source-mode" value={mode} checked={source.mode === mode}
                   data-testid={`mode-${mode}`} onChange={() => set({ mode })} />
            {label}
          </label>
        ))}
      </div>
      {source.mode === 'pixel' && (
        <div className="bd-wb-row">
          <NumberInput label="row" step={1} value={source.pixel[0]}
                       onChange={(v) => set({ pixel: [v, source.pixel[1]] })} />
          <NumberInput label="column" step={1} value={source.pixel[1]}
                       onChange={(v) => set({ pixel: [source.pixel[0], v] })} />
        </div>
      )}
      {source.mode === 'region' && (
        <div className="bd-wb-row">
          <NumberInput label="rows from" step={1} value={source.rows[0]}
                       onChange={(v) => set({ rows: [v, source.rows[1]] })} />
          <NumberInput label="to (excl.)" step={1} value={source.rows[1]}
                       onChange={(v) => set({ rows: [source.rows[0], v] })} />
          <NumberInput label="cols from" step={1} value={source.cols[0]}
                       onChange={(v) => set({ cols: [v, source.cols[1]] })} />
          <NumberInput label="to (excl.)" step={1} value={source.cols[1]}
                       onChange={(v) => set({ cols: [source.cols[0], v] })} />
        </div>
      )}
      {mapShape && <p className="muted">map of {mapShape.join(' × ')} pixels</p>}
      <button type="button" onClick={onLoad} disabled={busy || !source.file}
              data-testid="load-spectrum">
        Show spectrum
      </button>
    </fieldset>
  );
}

export function ConfigFilesPanel(props: {
  files: string[];
  current: string;
  onLoad: (file: string) => void;
  onSave: (name: string, overwrite: boolean) => void;
  mayWrite: boolean;
  status: string;
}) {
  const { files, current, onLoad, onSave, mayWrite, status } = props;
  const [chosen, setChosen] = useState('');
  const [name, setName] = useState('workbench_fit.toml');
  const [overwrite, setOverwrite] = useState(false);
  return (
    <fieldset className="bd-wb-panel" data-testid="config-panel">
      <legend>Configuration</legend>
      <p className="muted">In use: {current || 'not saved yet'}</p>
      <div className="bd-wb-row">
        <select value={chosen || current} onChange={(e) => setChosen(e.target.value)}
                data-testid="config-select">
          <option value="">choose a file of config/</option>
          {files.map((f) => (
            <option key={f} value={f}>{f}</option>
          ))}
        </select>
        <button type="button" onClick={() => onLoad(chosen || current)}
                disabled={!(chosen || current)} data-testid="config-load">
          Load
        </button>
      </div>
      {mayWrite && (
        <div className="bd-wb-row">
          <input value={name} onChange={(e) => setName(e.target.value)} data-testid="config-name"
                 title="saved in config/; .toml (BeamDesk) or .cfg (PyMca)" />
          <label>
            <input type="checkbox" checked={overwrite} onChange={() => setOverwrite(!overwrite)} />
            overwrite
          </label>
          <button type="button" onClick={() => onSave(name, overwrite)} data-testid="config-save">
            Save
          </button>
        </div>
      )}
      {status && <p className="bd-wb-status" data-testid="config-status">{status}</p>}
    </fieldset>
  );
}

export interface CalPoint {
  channel: number;
  energy: number | null;
}

/** Least-squares straight line E = zero + gain · channel through the points with energies. */
export function fitLine(points: CalPoint[]): { zero: number; gain: number } | null {
  const pts = points.filter((p) => p.energy !== null) as { channel: number; energy: number }[];
  if (pts.length < 2) return null;
  const n = pts.length;
  const sx = pts.reduce((s, p) => s + p.channel, 0);
  const sy = pts.reduce((s, p) => s + p.energy, 0);
  const sxx = pts.reduce((s, p) => s + p.channel * p.channel, 0);
  const sxy = pts.reduce((s, p) => s + p.channel * p.energy, 0);
  const det = n * sxx - sx * sx;
  if (det === 0) return null;
  const gain = (n * sxy - sx * sy) / det;
  return { zero: (sy - gain * sx) / n, gain };
}

export function CalibrationPanel(props: {
  cfg: XrfConfig;
  channels: number;
  points: CalPoint[];
  onPoints: (p: CalPoint[]) => void;
  onDetector: (patch: Record<string, unknown>) => void;
}) {
  const { cfg, channels, points, onPoints, onDetector } = props;
  const zero = Number(cfg.detector.zero ?? 0);
  const gain = Number(cfg.detector.gain ?? 0.01);
  const line = fitLine(points);
  const curve = useMemo(() => {
    const n = Math.max(channels, 2);
    const ch = Float64Array.from({ length: 64 }, (_, i) => (i * (n - 1)) / 63);
    return {
      x: ch,
      y: ndarray(Float64Array.from(ch, (c) => zero + gain * c)),
      domain: [zero, zero + gain * (n - 1)] as [number, number],
    };
  }, [zero, gain, channels]);
  return (
    <fieldset className="bd-wb-panel" data-testid="calibration-panel">
      <legend>Calibration</legend>
      <div className="bd-wb-row">
        <NumberInput label="zero (keV)" value={zero} testid="cal-zero"
                     onChange={(v) => onDetector({ zero: v })} />
        <NumberInput label="gain (keV/ch)" value={gain} testid="cal-gain"
                     onChange={(v) => onDetector({ gain: v })} />
      </div>
      <p className="muted">Click a peak in the spectrum to add its channel, then enter its energy.</p>
      {points.length > 0 && (
        <table className="bd-wb-table">
          <thead>
            <tr><th>channel</th><th>energy (keV)</th><th>line − E</th><th /></tr>
          </thead>
          <tbody>
            {points.map((p, i) => (
              <tr key={`${p.channel}-${i}`}>
                <td>{p.channel}</td>
                <td>
                  <input type="number" step="any" value={p.energy ?? ''} data-testid={`cal-energy-${i}`}
                         onChange={(e) => {
                           const next = [...points];
                           next[i] = { ...p, energy: e.target.value === '' ? null : Number(e.target.value) };
                           onPoints(next);
                         }} />
                </td>
                <td>
                  {line && p.energy !== null
                    ? `${((line.zero + line.gain * p.channel - p.energy) * 1000).toFixed(1)} eV`
                    : ''}
                </td>
                <td>
                  <button type="button" className="bd-link"
                          onClick={() => onPoints(points.filter((_, k) => k !== i))}>remove</button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {line && (
        <button type="button" data-testid="cal-apply"
                onClick={() => onDetector({ zero: line.zero, gain: line.gain })}>
          Use E = {line.zero.toFixed(4)} + {(line.gain * 1000).toFixed(3)} eV × channel
        </button>
      )}
      <div className="bd-wb-calplot" data-testid="calibration-line">
        <LineVis dataArray={curve.y} domain={curve.domain} curveType={CurveType.LineOnly}
                 abscissaParams={{ value: curve.x, label: 'channel' }} ordinateLabel="keV" />
      </div>
    </fieldset>
  );
}

export function SettingsPanel(props: { cfg: XrfConfig; onChange: (cfg: XrfConfig) => void }) {
  const { cfg, onChange } = props;
  const fit = cfg.fit;
  const det = cfg.detector;
  const setFit = (patch: Record<string, unknown>) => onChange({ ...cfg, fit: { ...fit, ...patch } });
  const setDet = (patch: Record<string, unknown>) =>
    onChange({ ...cfg, detector: { ...det, ...patch } });
  const beams = (fit.beam as { energy: number }[] | undefined) ?? [];
  const filters = (cfg.filters as Record<string, unknown>[] | undefined) ?? [];
  const setFilters = (next: Record<string, unknown>[]) => onChange({ ...cfg, filters: next });
  const background = String(fit.background ?? 'snip');
  return (
    <>
      <fieldset className="bd-wb-panel" data-testid="background-panel">
        <legend>Background and range</legend>
        <div className="bd-wb-row">
          <label className="bd-wb-field">
            <span>method</span>
            <select value={background} data-testid="bg-method"
                    onChange={(e) => setFit({ background: e.target.value })}>
              <option value="snip">SNIP</option>
              <option value="strip">strip</option>
              <option value="none">none</option>
            </select>
          </label>
          {background === 'snip' && (
            <NumberInput label="SNIP width (ch)" step={1} value={Number(fit.snip_width ?? 30)}
                         testid="bg-snip-width" onChange={(v) => setFit({ snip_width: Math.round(v) })} />
          )}
          {background === 'strip' && (
            <>
              <NumberInput label="strip width" step={1} value={Number(fit.strip_width ?? 1)}
                           onChange={(v) => setFit({ strip_width: Math.round(v) })} />
              <NumberInput label="iterations" step={1} value={Number(fit.strip_iterations ?? 20000)}
                           onChange={(v) => setFit({ strip_iterations: Math.round(v) })} />
            </>
          )}
          <NumberInput label="continuum order" step={1} value={Number(fit.continuum_order ?? 0)}
                       onChange={(v) => setFit({ continuum_order: Math.round(v) })} />
        </div>
        <div className="bd-wb-row">
          <NumberInput label="first channel" step={1} value={Number(fit.xmin ?? 0)}
                       onChange={(v) => setFit({ xmin: Math.round(v) })} />
          <NumberInput label="last channel (0: end)" step={1} value={Number(fit.xmax ?? 0)}
                       onChange={(v) => setFit({ xmax: Math.round(v) })} />
        </div>
      </fieldset>
      <fieldset className="bd-wb-panel" data-testid="detector-panel">
        <legend>Beam, detector and filters</legend>
        <div className="bd-wb-row">
          <NumberInput label="beam (keV)" value={beams[0]?.energy}
                       onChange={(v) => setFit({ beam: [{ ...(beams[0] ?? {}), energy: v }, ...beams.slice(1)] })} />
          <label className="bd-wb-field">
            <span>crystal</span>
            <select value={String(det.material ?? 'Si')}
                    onChange={(e) => setDet({ material: e.target.value })}>
              <option>Si</option>
              <option>Ge</option>
            </select>
          </label>
          <NumberInput label="noise (keV)" value={Number(det.noise ?? 0.1)}
                       onChange={(v) => setDet({ noise: v })} />
          <NumberInput label="Fano" value={Number(det.fano ?? 0.114)} onChange={(v) => setDet({ fano: v })} />
        </div>
        <div className="bd-wb-row">
          {(['escape', 'pileup', 'scatter'] as const).map((flag) => (
            <label key={flag}>
              <input type="checkbox" checked={Boolean(fit[flag])}
                     onChange={() => setFit({ [flag]: !fit[flag] })} />
              {flag === 'pileup' ? 'pile-up' : flag === 'scatter' ? 'scatter peaks' : 'escape peaks'}
            </label>
          ))}
        </div>
        <table className="bd-wb-table">
          <thead>
            <tr><th>filter</th><th>material</th><th>g/cm³</th><th>cm</th><th /></tr>
          </thead>
          <tbody>
            {filters.map((f, i) => (
              <tr key={i}>
                {(['name', 'material', 'density', 'thickness'] as const).map((key) => (
                  <td key={key}>
                    <input
                      value={String(f[key] ?? '')}
                      type={key === 'density' || key === 'thickness' ? 'number' : 'text'}
                      step="any"
                      onChange={(e) => {
                        const next = [...filters];
                        const value = key === 'density' || key === 'thickness'
                          ? Number(e.target.value) : e.target.value;
                        next[i] = { ...f, [key]: value };
                        setFilters(next);
                      }}
                    />
                  </td>
                ))}
                <td>
                  <button type="button" className="bd-link"
                          onClick={() => setFilters(filters.filter((_, k) => k !== i))}>remove</button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <button type="button" className="bd-link"
                onClick={() => setFilters([...filters, { name: `Filter ${filters.length}`,
                  material: 'Be', density: 1.848, thickness: 0.0025, funny: 1.0 }])}>
          add a filter
        </button>
      </fieldset>
    </>
  );
}
