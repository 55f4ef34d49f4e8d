// The viewer's own views (frame player, overlay) in the address bar, next to `file` and
// `path` (../common/config.ts: rememberInURL), so a copied link reopens the same frame or
// the same overlay for a colleague who may read the file.
//
//   ?file=…&path=/entry/data/data&view=frames&frame=120&axis=0&fps=10&side=512[&fix=1,0]
//   ?file=…&view=overlay&x=/entry/energy&y=/entry/i0&y=/entry/it
//   ?file=a.nxs&view=overlay&x=/e&y=/mu&x=b.nxs::/e&y=b.nxs::/mu&log=y
//   …&follow=1 (any view: following a growing file, ./live.ts)
//
// Overlay entries without `file::` (every entry of older links) are datasets of the open
// file; `x` may appear once per file (a file without one is plotted against the index).

export type ViewMode = 'h5web' | 'frames' | 'overlay';

export interface FramesState {
  frame: number;
  axis: number;
  fps: number;
  /** Largest side of the displayed frame (binned on the server); 0 = full resolution. */
  side: number;
  /** Indices of the other leading axes of an N-D dataset (`fix=1,0`). */
  fixed: number[];
}

/** One dataset of the overlay: a 1-D dataset of one of the proposal's files. */
export interface CurveRef {
  file: string;
  path: string;
}

export interface OverlayState {
  /** The x axis of each file's curves (file → dataset path); a file not listed = index. */
  x: Record<string, string>;
  y: CurveRef[];
  logX: boolean;
  logY: boolean;
}

export const EMPTY_OVERLAY: OverlayState = { x: {}, y: [], logX: false, logY: false };

const KEYS = ['view', 'frame', 'axis', 'fps', 'side', 'fix', 'x', 'y', 'log'];

/** `/path` (a dataset of the open file) or `file::/path`. */
function parseRef(entry: string, openFile: string): CurveRef {
  const at = entry.indexOf('::/');
  return at < 0
    ? { file: openFile, path: entry }
    : { file: entry.slice(0, at), path: entry.slice(at + 2) };
}

function formatRef(ref: CurveRef, openFile: string): string {
  return ref.file === openFile ? ref.path : `${ref.file}::${ref.path}`;
}

function readOverlay(query: URLSearchParams): OverlayState {
  const openFile = query.get('file') ?? '';
  const x: Record<string, string> = {};
  for (const entry of query.getAll('x')) {
    const ref = parseRef(entry, openFile);
    if (ref.path) {
      x[ref.file] = ref.path;
    }
  }
  const log = query.get('log') ?? '';
  return {
    x,
    y: query.getAll('y').map((entry) => parseRef(entry, openFile)),
    logX: log.includes('x'),
    logY: log.includes('y'),
  };
}

function intParam(query: URLSearchParams, key: string, fallback: number): number {
  const value = Number.parseInt(query.get(key) ?? '', 10);
  return Number.isFinite(value) && value >= 0 ? value : fallback;
}

export function readView(search = window.location.search): {
  mode: ViewMode;
  frames: FramesState;
  overlay: OverlayState;
} {
  const query = new URLSearchParams(search);
  const view = query.get('view');
  const mode: ViewMode = view === 'frames' || view === 'overlay' ? view : 'h5web';
  return {
    mode,
    frames: {
      frame: intParam(query, 'frame', 0),
      axis: intParam(query, 'axis', 0),
      fps: intParam(query, 'fps', 5) || 5,
      side: intParam(query, 'side', 512),
      fixed: query.get('fix')
        ? (query.get('fix') ?? '').split(',').map((v) => Math.max(0, Number.parseInt(v, 10) || 0))
        : [],
    },
    overlay: readOverlay(query),
  };
}

/** Replace the view part of the address (file and path are left as they are). */
export function writeView(
  mode: ViewMode,
  frames?: FramesState,
  overlay?: OverlayState,
): void {
  const url = new URL(window.location.href);
  KEYS.forEach((key) => url.searchParams.delete(key));
  if (mode === 'frames' && frames) {
    url.searchParams.set('view', 'frames');
    url.searchParams.set('frame', String(frames.frame));
    url.searchParams.set('axis', String(frames.axis));
    url.searchParams.set('fps', String(frames.fps));
    url.searchParams.set('side', String(frames.side));
    if (frames.fixed.some((v) => v > 0)) {
      url.searchParams.set('fix', frames.fixed.join(','));
    }
  } else if (mode === 'overlay' && overlay) {
    url.searchParams.set('view', 'overlay');
    const openFile = url.searchParams.get('file') ?? '';
    Object.entries(overlay.x).forEach(([file, path]) => {
      if (path) {
        url.searchParams.append('x', formatRef({ file, path }, openFile));
      }
    });
    overlay.y.forEach((ref) => url.searchParams.append('y', formatRef(ref, openFile)));
    const log = `${overlay.logX ? 'x' : ''}${overlay.logY ? 'y' : ''}`;
    if (log) {
      url.searchParams.set('log', log);
    }
  } else if (mode !== 'h5web') {
    url.searchParams.set('view', mode);
  }
  if (url.href !== window.location.href) {
    window.history.replaceState(null, '', url);
  }
}

/** Follow (./live.ts) as `follow=1`, whatever the view: a link reopens following. */
export function readFollow(search = window.location.search): boolean {
  return new URLSearchParams(search).get('follow') === '1';
}

export function writeFollow(follow: boolean): void {
  const url = new URL(window.location.href);
  if (follow) {
    url.searchParams.set('follow', '1');
  } else {
    url.searchParams.delete('follow');
  }
  if (url.href !== window.location.href) {
    window.history.replaceState(null, '', url);
  }
}

/** What H5Web shows, read from its DOM (it has no API for it). */
export interface H5WebView {
  /** Name of the active visualization tab ("NX Line", "Heatmap", …). */
  tab: string;
  /**
   * Per dimension of the plotted dataset: the index of its slicing slider, or ':' for a
   * dimension on an axis (no slider); dimensions after the last slider are missing (on an
   * axis too). H5Web labels each slider `h5w-slider-<dim>-label`.
   */
  slice: string[];
}

/**
 * `sidebar=closed`: H5Web opens with its explorer sidebar collapsed (App's `sidebarOpen`),
 * the plot using the whole width; the parameter is left in the address as it is.
 */
export function readSidebarOpen(search = window.location.search): boolean {
  return new URLSearchParams(search).get('sidebar') !== 'closed';
}

/** The address of what is on screen, to open with H5Web's sidebar closed. */
export function sidebarClosedLink(href = window.location.href): string {
  const url = new URL(href);
  url.searchParams.set('sidebar', 'closed');
  return url.href;
}
