// The XRF workbench: pick a spectrum, set up the fit (calibration, elements, background,
// detector, filters), fit it, then run the map fit as a job and look at the maps.
import { useCallback, useEffect, useMemo, useState } from 'react';

import {
  type FitAnswer,
  type FitResult,
  getJSON,
  type JobSummary,
  plotted,
  postJSON,
  type WorkbenchConfig,
  type XrfConfig,
} from './api';
import { download, fitCSV, fitPNG } from './exports';
import { ElementMaps, MapView } from './Maps';
import {
  CalibrationPanel,
  type CalPoint,
  ConfigFilesPanel,
  SettingsPanel,
  SourcePanel,
  type SourceState,
  toSource,
} from './Panels';
import PeriodicTable from './PeriodicTable';
import { RgbCorrelator } from './Rgb';
import SpectrumPlot, { type Curves, ResidualPlot } from './SpectrumPlot';

const DEFAULT_CONFIG: XrfConfig = {
  peaks: {},
  detector: { material: 'Si', zero: 0, gain: 0.01, noise: 0.1, fano: 0.114 },
  fit: { background: 'snip', snip_width: 30, xmin: 0, xmax: 0, escape: true,
         beam: [{ energy: 17.0, weight: 1.0, scatter: true }] },
};

function percent(value: number | null): string {
  return value === null ? '—' : `${Number((100 * value).toPrecision(3))} %`;
}

function ResultsTable(props: { fit: FitResult }) {
  const { fit } = props;
  const rows = Object.entries(fit.groups);
  return (
    <table className="bd-wb-table bd-wb-results" data-testid="results-table">
      <caption>
        χ²ᵣ = {fit.chi2_reduced?.toFixed(2) ?? '—'} · zero {fit.calibration.zero.toFixed(4)} keV ·
        gain {(fit.calibration.gain * 1000).toFixed(3)} eV/ch · noise {(fit.noise * 1000).toFixed(0)} eV ·
        Fano {fit.fano.toFixed(3)}
        {fit.quantification.method
          ? ` · mass fractions: ${fit.quantification.method}${fit.quantification.reference ? ` ${fit.quantification.reference}` : ''}`
          : ''}
      </caption>
      <thead>
        <tr><th>group</th><th className="num">area</th><th className="num">σ</th>
          <th className="num">rel. σ</th><th className="num">mass fraction</th><th className="num">σ</th></tr>
      </thead>
      <tbody>
        {rows.map(([name, g]) => (
          <tr key={name} data-group={name}>
            <td>{name}</td>
            <td className="num">{g.area.toFixed(0)}</td>
            <td className="num">{g.sigma.toFixed(0)}</td>
            <td className="num">{g.area ? `${((100 * g.sigma) / Math.abs(g.area)).toFixed(2)} %` : '—'}</td>
            <td className="num">{percent(g.mass_fraction)}</td>
            <td className="num">{percent(g.mass_fraction_sigma)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

interface MapResult {
  file: string;
  groups: string[];
  maps: Record<string, string>;
}

function MapJob(props: { page: WorkbenchConfig; source: SourceState; cfg: XrfConfig;
  onResult: (r: MapResult) => void }) {
  const { page, source, cfg, onResult } = props;
  const [job, setJob] = useState<JobSummary | null>(null);
  const [error, setError] = useState('');

  async function start() {
    setError('');
    try {
      const submitted = await postJSON<JobSummary>(`/api/proposals/${page.proposal}/jobs`,
        page.csrf, { kind: 'xrf_map', input: `${source.file}::${source.path}`, config: cfg });
      setJob(submitted);
      // live progress: the job API's Server-Sent Events (docs/jobs.md)
      const events = new EventSource(`/api/jobs/${submitted.id}/events`);
      const update = (evt: MessageEvent<string>) => setJob(JSON.parse(evt.data) as JobSummary);
      events.addEventListener('progress', update as EventListener);
      events.addEventListener('end', ((evt: MessageEvent<string>) => {
        update(evt);
        events.close();
        const final = JSON.parse(evt.data) as JobSummary;
        const output = final.outputs[0]?.path;
        if (final.state === 'done' && output) {
          getJSON<MapResult>(`/api/proposals/${page.proposal}/xrf/result?file=${encodeURIComponent(output)}`)
            .then(onResult)
            .catch((err: Error) => setError(err.message));
        }
      }) as EventListener);
      events.onerror = () => {
        if (events.readyState === EventSource.CLOSED) setError('Lost the connection to the job.');
      };
    } catch (err) {
      setError((err as Error).message);
    }
  }

  const running = job && (job.state === 'queued' || job.state === 'running');
  return (
    <div className="bd-wb-job" data-testid="map-job">
      <button type="button" onClick={start} disabled={Boolean(running) || !source.path || !page.mayRun}
              data-testid="run-map-fit"
              title={page.mayRun ? 'Fit every pixel with this configuration, as a job' :
                'Only members and staff of the proposal may run jobs'}>
        Run map fit
      </button>
      {job && (
        <span className="bd-wb-progress">
          <progress max={1} value={job.progress} />
          <span data-testid="job-percent">{Math.round(100 * job.progress)} %</span>
          <span data-testid="job-state" data-state={job.state}>{job.state}</span>
          {job.message && <span className="muted">{job.message}</span>}
          <a href={`/proposals/${page.proposal}/jobs`}>job {job.id}</a>
        </span>
      )}
      {error && <p className="bd-wb-error">{error}</p>}
    </div>
  );
}

function WorkbenchApp(props: { page: WorkbenchConfig }) {
  const { page } = props;
  const [source, setSource] = useState<SourceState>({
    file: page.file, path: page.path, mode: page.path || !page.file ? 'sum' : 'whole',
    pixel: [0, 0], rows: [0, 10], cols: [0, 10],
  });
  const [cfg, setCfg] = useState<XrfConfig>(DEFAULT_CONFIG);
  const [configFile, setConfigFile] = useState('');
  const [configFiles, setConfigFiles] = useState<string[]>([]);
  const [configStatus, setConfigStatus] = useState('');
  const [counts, setCounts] = useState<number[] | null>(null);
  const [mapShape, setMapShape] = useState<number[] | null>(null);
  const [fit, setFit] = useState<FitResult | null>(null);
  const [busy, setBusy] = useState('');
  const [error, setError] = useState('');
  const [log, setLog] = useState(true);
  const [points, setPoints] = useState<CalPoint[]>([]);
  const [windowKeV, setWindowKeV] = useState<[number, number]>([6.2, 6.6]);
  const [roi, setRoi] = useState<{ values: number[]; shape: [number, number]; title: string } | null>(null);
  const [result, setResult] = useState<MapResult | null>(null);

  const loadConfig = useCallback((file: string) => {
    setConfigStatus('');
    getJSON<{ config: XrfConfig; file: string }>(
      `/api/proposals/${page.proposal}/xrf/config?file=${encodeURIComponent(file)}`)
      .then((answer) => {
        setCfg(answer.config);
        setConfigFile(answer.file);
        setConfigStatus(`Loaded ${answer.file}.`);
      })
      .catch((err: Error) => setConfigStatus(err.message));
  }, [page.proposal]);

  const [candidates, setCandidates] = useState<string[]>([]);
  // opened with a file but no dataset (e.g. from the proposal's file list): find its spectra
  useEffect(() => {
    if (!page.file) return;
    getJSON<{ datasets: { path: string; shape: number[] }[] }>(
      `/api/proposals/${page.proposal}/xrf/spectra?file=${encodeURIComponent(page.file)}`)
      .then((answer) => {
        setCandidates(answer.datasets.map((d) => d.path));
        const best = answer.datasets[0];
        if (!page.path && best) {
          setSource((s) => ({ ...s, path: best.path, mode: best.shape.length > 1 ? 'sum' : 'whole' }));
        }
      })
      .catch(() => setCandidates([])); // not HDF5 (.mca, .spe …): a single spectrum
  }, [page.proposal, page.file, page.path]);

  useEffect(() => {
    getJSON<{ files: string[] }>(`/api/proposals/${page.proposal}/xrf/configs`)
      .then((answer) => {
        setConfigFiles(answer.files);
        const first = answer.files.find((f) => f.endsWith('.toml')) ?? answer.files[0];
        if (first) loadConfig(first);
      })
      .catch(() => setConfigFiles([]));
  }, [page.proposal, loadConfig]);

  async function saveConfig(name: string, overwrite: boolean) {
    try {
      const answer = await postJSON<{ file: string }>(
        `/api/proposals/${page.proposal}/xrf/config/save`, page.csrf, { name, config: cfg, overwrite });
      setConfigFile(answer.file);
      setConfigFiles((files) => [...new Set([...files, answer.file])].sort());
      setConfigStatus(`Saved ${answer.file}.`);
    } catch (err) {
      setConfigStatus((err as Error).message);
    }
  }

  async function loadSpectrum() {
    setBusy('spectrum');
    setError('');
    try {
      const answer = await postJSON<{ counts: number[]; map_shape: number[] | null }>(
        `/api/proposals/${page.proposal}/xrf/spectrum`, page.csrf, toSource(source));
      setCounts(answer.counts);
      setMapShape(answer.map_shape);
      setFit(null);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy('');
    }
  }

  async function runFit() {
    setBusy('fit');
    setError('');
    try {
      const answer = plotted(await postJSON<FitAnswer>(`/api/proposals/${page.proposal}/xrf/fit`,
        page.csrf, { source: toSource(source), config: cfg }));
      setFit(answer);
      setCounts(answer.spectrum.counts);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy('');
    }
  }

  async function roiMap(emin: number, emax: number) {
    setWindowKeV([emin, emax]);
    if (!source.path) return;
    const cal = fit?.calibration ?? { zero: Number(cfg.detector.zero ?? 0),
      gain: Number(cfg.detector.gain ?? 0.01), quad: 0 };
    const title = `${emin.toFixed(2)}–${emax.toFixed(2)} keV`;
    try {
      const answer = await postJSON<{ shape: [number, number]; maps: Record<string, number[]> }>(
        `/api/proposals/${page.proposal}/xrf/roi`, page.csrf,
        { file: source.file, path: source.path, calibration: cal,
          windows: [{ name: title, emin, emax }] });
      setRoi({ values: answer.maps[title], shape: answer.shape, title });
    } catch (err) {
      setError((err as Error).message);
    }
  }

  const excitation = useMemo(() => {
    const beams = cfg.fit.beam as { energy: number }[] | undefined;
    return beams?.[0]?.energy ?? null;
  }, [cfg]);

  const curves: Curves | null = useMemo(() => {
    if (fit) {
      return { energy: fit.energy, data: fit.data, fit: fit.fit, background: fit.background,
               contributions: fit.contributions };
    }
    if (!counts) return null;
    const zero = Number(cfg.detector.zero ?? 0);
    const gain = Number(cfg.detector.gain ?? 0.01);
    return { energy: counts.map((_, i) => zero + gain * i), data: counts };
  }, [fit, counts, cfg.detector.zero, cfg.detector.gain]);

  return (
    <div className="bd-wb">
      <aside className="bd-wb-side">
        <SourcePanel source={source} mapShape={mapShape} onChange={setSource} candidates={candidates}
                     onLoad={loadSpectrum} busy={Boolean(busy)} />
        <ConfigFilesPanel files={configFiles} current={configFile} onLoad={loadConfig}
                          onSave={saveConfig} mayWrite={page.mayRun} status={configStatus} />
        <fieldset className="bd-wb-panel" data-testid="elements-panel">
          <legend>Elements</legend>
          <PeriodicTable peaks={cfg.peaks} excitation={excitation}
                         onChange={(peaks) => setCfg({ ...cfg, peaks })} />
          <p className="muted" data-testid="chosen-groups">
            {Object.entries(cfg.peaks).map(([el, g]) => `${el} ${g.join('/')}`).join(', ') || 'none chosen'}
          </p>
        </fieldset>
        <CalibrationPanel cfg={cfg} channels={counts?.length ?? 2048} points={points}
                          onPoints={setPoints}
                          onDetector={(patch) => setCfg({ ...cfg, detector: { ...cfg.detector, ...patch } })} />
        <SettingsPanel cfg={cfg} onChange={setCfg} />
      </aside>
      <section className="bd-wb-main">
        <div className="bd-wb-toolbar">
          <button type="button" className="primary" onClick={runFit}
                  disabled={Boolean(busy) || !source.file} data-testid="fit-button">
            {busy === 'fit' ? 'Fitting…' : 'Fit'}
          </button>
          <label>
            <input type="checkbox" checked={log} onChange={() => setLog(!log)} data-testid="log-toggle" />
            log scale
          </label>
          {fit && (
            <>
              <button type="button" className="bd-link" data-testid="export-fit-csv"
                      onClick={() => download(new Blob([fitCSV(fit)], { type: 'text/csv' }), 'xrf_fit.csv')}>
                CSV
              </button>
              <button type="button" className="bd-link" data-testid="export-fit-json"
                      onClick={() => download(new Blob([JSON.stringify(fit, null, 1)],
                        { type: 'application/json' }), 'xrf_fit.json')}>
                JSON
              </button>
              <button type="button" className="bd-link" data-testid="export-fit-png"
                      onClick={() => {
                        void fitPNG(fit, log, `${source.file} ${source.path}`).then(
                          (blob) => blob && download(blob, 'xrf_fit.png'));
                      }}>
                PNG
              </button>
            </>
          )}
          {busy && <span className="muted" data-testid="busy">{busy === 'fit' ? 'fitting…' : 'reading…'}</span>}
        </div>
        {error && <p className="bd-wb-error" data-testid="workbench-error">{error}</p>}
        {curves ? (
          <>
            <SpectrumPlot curves={curves} log={log} excitation={excitation}
                          onPick={(index) => setPoints([...points, { channel: fit ? fit.channels[index] : index, energy: null }])}
                          onWindow={(a, b) => void roiMap(a, b)} />
            {fit && <ResidualPlot energy={fit.energy} data={fit.data} fit={fit.fit} />}
          </>
        ) : (
          <p className="bd-empty muted" data-testid="no-spectrum">
            Choose a spectrum on the left, then “Show spectrum” or “Fit”.
          </p>
        )}
        {fit && <ResultsTable fit={fit} />}
        {source.path && (
          <section className="bd-wb-section" data-testid="map-section">
            <h3>Map</h3>
            <div className="bd-wb-row">
              <span>ROI window (or Shift + drag on the spectrum):</span>
              <input type="number" step="any" value={windowKeV[0]} data-testid="roi-min"
                     onChange={(e) => setWindowKeV([Number(e.target.value), windowKeV[1]])} />
              –
              <input type="number" step="any" value={windowKeV[1]} data-testid="roi-max"
                     onChange={(e) => setWindowKeV([windowKeV[0], Number(e.target.value)])} />
              keV
              <button type="button" onClick={() => void roiMap(windowKeV[0], windowKeV[1])}
                      data-testid="roi-button">ROI map</button>
            </div>
            <MapJob page={page} source={source} cfg={cfg} onResult={setResult} />
            <div className="bd-wb-maps">
              {roi && <MapView title={`ROI ${roi.title}`} values={roi.values} shape={roi.shape}
                               testid="roi-map" />}
            </div>
            {result && (
              <>
                <p>
                  Result: <a href={`/proposals/${page.proposal}/viewer?file=${encodeURIComponent(result.file)}`}
                             data-testid="result-link">{result.file}</a>
                </p>
                <ElementMaps proposal={page.proposal} file={result.file} maps={result.maps} />
                <RgbCorrelator proposal={page.proposal} csrf={page.csrf} file={result.file}
                               groups={result.groups} />
              </>
            )}
          </section>
        )}
      </section>
    </div>
  );
}

export default WorkbenchApp;
