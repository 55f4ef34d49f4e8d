// Frame player for image stacks (3-D and N-D datasets, last two axes = image): play/pause,
// speed, frame slider, loop, with frames fetched from /h5/data (binned on the server to the
// chosen size) and the next frames fetched while the current one is on screen. H5Web 17 has
// no such view (h5web #1771), so this is our own, drawn by @h5web/lib's HeatmapVis.
import {
  type ColorMap,
  type ColorScaleType,
  type Domain,
  getDomain,
  HeatmapVis,
  ScaleType,
} from '@h5web/lib';
import ndarray from 'ndarray';
import { useEffect, useMemo, useRef, useState } from 'react';

import {
  binFactor,
  fetchFrame,
  type Frame,
  FrameCache,
  frameSelection,
  frameStats,
  resolveStack,
  type StackInfo,
} from './stack';
import { axisLabel, frameAxisText, shownEdges } from './nexusAxes';
import type { FramesState } from './viewState';

interface Props {
  apiURL: string;
  file: string;
  path: string;
  state: FramesState;
  onChange: (state: FramesState) => void;
  /** Bumped by Refresh (./live.ts): the stack's shape and frames are read again. */
  generation?: number;
  /** Follow: show the last frame, again whenever the stack grows. */
  follow?: boolean;
}

const SPEEDS = [1, 2, 5, 10, 20, 30];
const SIDES = [256, 512, 1024, 2048, 0];
const COLORMAPS: ColorMap[] = ['Viridis', 'Greys', 'Inferno', 'Magma', 'Cividis', 'Turbo'];
const SCALES: ColorScaleType[] = [ScaleType.Linear, ScaleType.Log, ScaleType.SymLog];
/** Frames fetched ahead of the one on screen. */
const AHEAD = 4;

function useStack(apiURL: string, file: string, path: string, generation: number) {
  const [stack, setStack] = useState<StackInfo>();
  const [error, setError] = useState<string>();
  const read = useRef('');
  useEffect(() => {
    let live = true;
    // A refresh of the same stack keeps the frame on screen until the new one is read.
    const what = JSON.stringify([apiURL, file, path]);
    if (read.current !== what) {
      read.current = what;
      setStack(undefined);
    }
    setError(undefined);
    resolveStack(apiURL, file, path).then(
      (s) => live && setStack(s),
      (err: unknown) => live && setError(err instanceof Error ? err.message : String(err)),
    );
    return () => {
      live = false;
    };
  }, [apiURL, file, path, generation]);
  return { stack, error };
}

/** Full-resolution export of one frame by the server (named after file, dataset, frame). */
function frameURL(
  apiURL: string,
  file: string,
  path: string,
  selection: string,
  format: string,
): string {
  return `${apiURL}/data?${new URLSearchParams({ file, path, selection, format }).toString()}`;
}

/** Edges of the shown pixels along an image axis (NeXus axis values, else pixel indices). */
function axisParams(stack: StackInfo, dim: number, factor: number, count: number) {
  const axis = stack.axes[dim];
  return {
    value: shownEdges(axis?.values, stack.shape[dim], factor, count),
    label: axis && axisLabel(axis),
  };
}

function StackPlayer(props: Props) {
  const { apiURL, file, path, state, onChange, generation = 0, follow = false } = props;
  const { stack, error } = useStack(apiURL, file, path, generation);
  const [playing, setPlaying] = useState(false);
  const [loop, setLoop] = useState(true);
  const [shown, setShown] = useState<Frame>();
  /** The cache (one per reading of the stack) `shown` came from. */
  const [shownFrom, setShownFrom] = useState<FrameCache>();
  const [frameError, setFrameError] = useState<string>();
  const [colorMap, setColorMap] = useState<ColorMap>('Viridis');
  const [scaleType, setScaleType] = useState<ColorScaleType>(ScaleType.Linear);
  const [lockRange, setLockRange] = useState(true);
  const [lockedDomain, setLockedDomain] = useState<Domain>();
  const [flipY, setFlipY] = useState(false);

  const ndim = stack?.shape.length ?? 0;
  const axis = stack && state.axis < ndim - 2 ? state.axis : 0;
  const count = stack ? stack.shape[axis] : 0;
  const frame = Math.min(state.frame, Math.max(0, count - 1));
  const side = state.side || undefined;
  const { fixed } = state;

  const cache = useMemo(
    () =>
      stack && new FrameCache((selection) => fetchFrame(apiURL, file, stack, selection, side)),
    [apiURL, file, stack, side],
  );
  const selectionOf = (k: number) => (stack ? frameSelection(stack.shape, axis, fixed, k) : '');
  const selection = selectionOf(frame);

  // Follow: the last frame, once the stack (re-read on each growth) is there.
  useEffect(() => {
    if (follow && stack && count > 0 && state.frame !== count - 1) {
      setPlaying(false);
      onChange({ ...state, axis, frame: count - 1 });
    }
    // Only when following starts or the stack was read again: the slider stays free.
    // eslint-disable-next-line react-hooks/exhaustive-deps -- on purpose, as just said
  }, [follow, stack]);

  // A new stack, axis or resolution: the colour range is taken again from the next frame.
  useEffect(() => setLockedDomain(undefined), [stack, axis, side, fixed, scaleType]);

  // Show the requested frame as soon as it is there; fetch the next ones meanwhile.
  useEffect(() => {
    if (!cache || !stack) {
      return undefined;
    }
    let live = true;
    setFrameError(undefined);
    cache.get(selection).then(
      (f) => {
        if (live) {
          setShown(f);
          setShownFrom(cache);
        }
      },
      (err: unknown) => {
        if (live) {
          setPlaying(false);
          setFrameError(err instanceof Error ? err.message : String(err));
        }
      },
    );
    for (let k = 1; k <= AHEAD; k += 1) {
      const next = frame + k;
      if (next < count || loop) {
        cache.get(selectionOf(next % count)).catch(() => undefined);
      }
    }
    return () => {
      live = false;
    };
    // selectionOf(k) depends only on what `selection` encodes (stack, axis, fixed).
    // eslint-disable-next-line react-hooks/exhaustive-deps -- hence not listed
  }, [cache, selection, frame, count, loop]);

  // Playing: once the requested frame is on screen, ask for the next one a period after
  // the previous step (at once when fetching and drawing took longer than a period).
  // After a refresh the frame on screen is from the earlier reading until it is read again.
  const ready = shown?.selection === selection && shownFrom === cache;
  const lastStep = useRef(0);
  useEffect(() => {
    if (!playing || !ready || count < 2) {
      return undefined;
    }
    const wait = Math.max(0, 1000 / state.fps - (performance.now() - lastStep.current));
    const timer = window.setTimeout(() => {
      lastStep.current = performance.now();
      const next = frame + 1;
      if (next >= count && !loop) {
        setPlaying(false);
        return;
      }
      onChange({ ...state, axis, frame: next % count });
    }, wait);
    return () => window.clearTimeout(timer);
  }, [playing, ready, frame, count, loop, state, axis, onChange]);

  const frameDomain = useMemo(
    () =>
      shown &&
      getDomain(shown.values, {
        scaleType: scaleType === ScaleType.Linear ? undefined : scaleType,
      }),
    [shown, scaleType],
  );
  useEffect(() => {
    // From the requested frame (not the one still on screen while it is fetched).
    if (lockRange && !lockedDomain && frameDomain && ready) {
      setLockedDomain(frameDomain);
    }
  }, [lockRange, lockedDomain, frameDomain, ready]);
  const domain = lockRange ? (lockedDomain ?? frameDomain) : frameDomain;
  const stats = useMemo(() => shown && frameStats(shown.values), [shown]);
  // New arrays only when a new frame arrives: HeatmapVis redoes its work on new props.
  const plot = useMemo(() => {
    if (!shown || !stack) {
      return undefined;
    }
    const dims = stack.shape.length;
    return {
      dataArray: ndarray(shown.values, [shown.rows, shown.cols]),
      abscissa: axisParams(stack, dims - 1, shown.factors[1], shown.cols),
      ordinate: axisParams(stack, dims - 2, shown.factors[0], shown.rows),
    };
  }, [shown, stack]);

  if (error) {
    return (
      <p className="bd-empty" data-testid="player-error">
        {error}
      </p>
    );
  }
  if (!stack) {
    return <p className="bd-empty">Loading…</p>;
  }
  const rows = stack.shape[ndim - 2];
  const cols = stack.shape[ndim - 1];
  const playedAxisText = frameAxisText(stack.axes[axis], frame);
  const wouldBin =
    !stack.ctor || (side !== undefined && Math.max(rows, cols) > side)
      ? [binFactor(rows, side ?? rows), binFactor(cols, side ?? cols)]
      : [1, 1];

  return (
    <div className="bd-player" data-testid="stack-player">
      <div className="bd-controls">
        <button
          type="button"
          onClick={() => setPlaying(!playing)}
          data-testid="play"
          aria-pressed={playing}
        >
          {playing ? '⏸ Pause' : '▶ Play'}
        </button>
        <input
          type="range"
          min={0}
          max={Math.max(0, count - 1)}
          value={frame}
          aria-label="Frame"
          data-testid="frame-slider"
          onChange={(e) => onChange({ ...state, axis, frame: Number(e.target.value) })}
        />
        <span
          data-testid="frame-index"
          data-frame={shown && ready ? frame : ''}
          data-selection={shown?.selection ?? ''}
        >
          Frame {frame} / {count - 1}
          {playedAxisText && (
            <span data-testid="frame-axis-value" data-value={stack.axes[axis]?.values[frame]}>
              {' · '}
              {playedAxisText}
            </span>
          )}
        </span>
        <label>
          Speed{' '}
          <select
            value={state.fps}
            data-testid="speed"
            onChange={(e) => onChange({ ...state, axis, frame, fps: Number(e.target.value) })}
          >
            {SPEEDS.map((fps) => (
              <option key={fps} value={fps}>
                {fps} fps
              </option>
            ))}
          </select>
        </label>
        <label>
          <input type="checkbox" checked={loop} onChange={(e) => setLoop(e.target.checked)} />{' '}
          Loop
        </label>
        {ndim > 3 && (
          <label>
            Play along{' '}
            <select
              value={axis}
              data-testid="play-axis"
              onChange={(e) => onChange({ ...state, axis: Number(e.target.value), frame: 0 })}
            >
              {stack.shape.slice(0, -2).map((n, i) => (
                <option key={i} value={i}>
                  axis {i} ({n})
                </option>
              ))}
            </select>
          </label>
        )}
        {ndim > 3 &&
          stack.shape.slice(0, -2).map((n, i) =>
            i === axis ? null : (
              <label key={i}>
                axis {i}{' '}
                <input
                  type="number"
                  min={0}
                  max={n - 1}
                  value={fixed[i] ?? 0}
                  className="bd-index"
                  aria-label={`index along axis ${i}`}
                  onChange={(e) => {
                    const next = stack.shape.slice(0, -2).map((_, j) => fixed[j] ?? 0);
                    next[i] = Math.min(n - 1, Math.max(0, Number(e.target.value) || 0));
                    onChange({ ...state, axis, frame, fixed: next });
                  }}
                />
              </label>
            ),
          )}
        <label>
          Size{' '}
          <select
            value={state.side}
            data-testid="frame-size"
            onChange={(e) => onChange({ ...state, axis, frame, side: Number(e.target.value) })}
          >
            {SIDES.map((s) => (
              <option key={s} value={s}>
                {s ? `≤ ${s} px` : 'full'}
              </option>
            ))}
          </select>
        </label>
        <select
          value={colorMap}
          aria-label="Colour map"
          onChange={(e) => setColorMap(e.target.value as ColorMap)}
        >
          {COLORMAPS.map((c) => (
            <option key={c}>{c}</option>
          ))}
        </select>
        <select
          value={scaleType}
          aria-label="Scale"
          onChange={(e) => setScaleType(e.target.value as ColorScaleType)}
        >
          {SCALES.map((s) => (
            <option key={s}>{s}</option>
          ))}
        </select>
        <label title="Row 0 at the top, as in most image viewers">
          <input
            type="checkbox"
            checked={flipY}
            onChange={(e) => setFlipY(e.target.checked)}
          />{' '}
          Flip Y
        </label>
        <label title="Keep the colour range of the first frame while playing">
          <input
            type="checkbox"
            checked={lockRange}
            onChange={(e) => setLockRange(e.target.checked)}
          />{' '}
          Fixed range
        </label>
        {lockRange && (
          <button type="button" onClick={() => setLockedDomain(frameDomain)}>
            Fit to frame
          </button>
        )}
        <span className="bd-downloads">
          {(['npy', 'tiff'] as const).map((format) => (
            <a
              key={format}
              href={frameURL(apiURL, file, stack.path, selection, format)}
              download
              data-testid={`frame-${format}`}
              title="This frame at full resolution"
            >
              {format.toUpperCase()}
            </a>
          ))}
        </span>
      </div>
      <div className="bd-player-note" data-testid="frame-note">
        {stack.path} [{selection}] · {stack.shape.join('×')}
        {wouldBin[0] * wouldBin[1] > 1 &&
          ` · shown binned ${wouldBin.join('×')} (mean) on the server`}
        {stats && (
          <span
            data-testid="frame-stats"
            data-min={stats.min}
            data-max={stats.max}
            data-mean={stats.mean}
            data-rows={shown?.rows}
            data-cols={shown?.cols}
          >
            {' '}
            · min {stats.min.toPrecision(5)} · max {stats.max.toPrecision(5)} · mean{' '}
            {stats.mean.toPrecision(5)}
          </span>
        )}
        {frameError && <span className="bd-error"> · {frameError}</span>}
      </div>
      <div className="bd-player-plot">
        {plot && (
          <HeatmapVis
            dataArray={plot.dataArray}
            domain={domain}
            colorMap={colorMap}
            scaleType={scaleType}
            aspect="equal"
            flipYAxis={flipY}
            title={`${stack.path} — frame ${frame}`}
            abscissaParams={plot.abscissa}
            ordinateParams={plot.ordinate}
          />
        )}
      </div>
    </div>
  );
}

export default StackPlayer;
