// The viewer page: file browser on the left, H5Web (explorer, search, inspector, NeXus and
// N-D views, export menu) on the right, talking to BeamDesk's h5grove-compatible API.
import { App, H5GroveProvider } from '@h5web/app';
import { useEffect, useMemo, useState } from 'react';

import { type PageConfig, rememberInURL } from '../common/config';
import { BinRegistry } from '../common/downsample';
import { makeGetExportURL } from '../common/exports';
import { binningFetcher } from '../common/fetcher';
import FileBrowser from './FileBrowser';
import LiveControls from './LiveControls';
import OverlayPanel from './OverlayPanel';
import StackPlayer from './StackPlayer';
import ViewBoundary from './ViewBoundary';
import ViewerBar from './ViewerBar';
import {
  type FramesState,
  type H5WebView,
  type OverlayState,
  readFollow,
  readSidebarOpen,
  readView,
  type ViewMode,
  writeFollow,
  writeView,
} from './viewState';

const MODES: [ViewMode, string, string][] = [
  ['h5web', 'Explore', 'H5Web: tree, inspector, NeXus and N-D views, exports'],
  ['frames', 'Play frames', 'Play through the frames of the selected 3-D (or N-D) dataset'],
  ['overlay', 'Overlay 1-D', '1-D datasets of this and other files of the proposal on one plot'],
];

function readSlice(root: HTMLElement): string[] {
  const slice: string[] = [];
  const mapper = root.querySelectorAll('[id^="h5w-slider-"][id$="-label"]');
  if (mapper.length === 0) {
    return slice;
  }
  const dims = Math.max(...Array.from(mapper, (el) => Number(el.id.split('-')[2]))) + 1;
  for (let d = 0; d < dims; d += 1) {
    const label = root.querySelector(`#h5w-slider-${d}-label`);
    const thumb = root.querySelector(`[role="slider"][aria-labelledby="h5w-slider-${d}-label"]`);
    slice.push(label ? (thumb?.getAttribute('aria-valuenow') ?? '0') : ':');
  }
  return slice;
}

/**
 * Follow H5Web's selection (its explorer marks the chosen tree item aria-selected), its
 * active visualization tab and the positions of its slicing sliders.
 */
function useH5WebState(
  root: HTMLElement | null,
  initial: string,
): { path: string; view: H5WebView } {
  const [path, setPath] = useState(initial);
  const [view, setView] = useState<H5WebView>({ tab: '', slice: [] });
  useEffect(() => {
    setPath(initial);
    if (!root) {
      return undefined;
    }
    const read = () => {
      const item = root.querySelector<HTMLElement>('[role="treeitem"][aria-selected="true"]');
      const selected = item?.dataset.path;
      if (selected) {
        setPath(selected);
      }
      // The explorer's own tabs (icons, no text) come first; the visualization tab last.
      const tabs = Array.from(root.querySelectorAll('[role="tab"][aria-selected="true"]'))
        .map((el) => el.textContent ?? '')
        .filter(Boolean);
      const tab = tabs[tabs.length - 1] ?? '';
      const slice = readSlice(root);
      setView((old) =>
        old.tab === tab && old.slice.join() === slice.join() ? old : { tab, slice },
      );
    };
    const observer = new MutationObserver(read);
    observer.observe(root, {
      subtree: true,
      childList: true,
      attributeFilter: ['aria-selected', 'aria-valuenow'],
    });
    return () => observer.disconnect();
  }, [root, initial]);
  return { path, view };
}

function ViewerApp(props: { config: PageConfig }) {
  const { config } = props;
  const [file, setFile] = useState(config.file);
  const [initialPath, setInitialPath] = useState(config.path);
  const [h5webRoot, setH5webRoot] = useState<HTMLDivElement | null>(null);
  // Live data (./live.ts): Refresh bumps the generation, which remounts H5Web.
  const [generation, setGeneration] = useState(0);
  const [follow, setFollow] = useState(readFollow);
  useEffect(() => writeFollow(follow), [follow]);

  // One registry per file (and refresh): what is binned depends on the file's datasets.
  // eslint-disable-next-line react-hooks/exhaustive-deps -- a new registry on each, on purpose
  const registry = useMemo(() => new BinRegistry(), [file, generation]);
  const fetcher = useMemo(() => binningFetcher(registry), [registry]);
  const getExportURL = useMemo(
    () => makeGetExportURL(config.apiURL, file, registry),
    [config.apiURL, file, registry],
  );
  const { path: selected, view: h5webView } = useH5WebState(h5webRoot, initialPath);
  const [initialView] = useState(readView);
  // `sidebar=closed` (a "Link, no sidebar"): H5Web opens with its explorer collapsed.
  const [sidebarOpen] = useState(() => readSidebarOpen());
  const [mode, setMode] = useState<ViewMode>(initialView.mode);
  const [frames, setFrames] = useState<FramesState>(initialView.frames);
  const [overlay, setOverlay] = useState<OverlayState>(initialView.overlay);

  useEffect(() => rememberInURL(file, selected), [file, selected]);
  // Written once the state rests, not on every frame while playing (browsers throttle
  // history updates, and the link only needs the frame one stops at).
  useEffect(() => {
    const timer = window.setTimeout(() => writeView(mode, frames, overlay), 400);
    return () => window.clearTimeout(timer);
  }, [mode, frames, overlay]);

  // The same element while our views change state (every frame when playing), so React
  // does not re-render H5Web's whole tree behind them.
  const h5web = useMemo(
    () => (
      <H5GroveProvider
        key={`${file}#${generation}`}
        url={config.apiURL}
        filepath={file}
        fetcher={fetcher}
        getExportURL={getExportURL}
      >
        <App initialPath={initialPath} sidebarOpen={sidebarOpen} />
      </H5GroveProvider>
    ),
    [file, config.apiURL, fetcher, getExportURL, initialPath, generation, sidebarOpen],
  );

  /** Read the file again, keeping the selected object and the mode. */
  function refresh() {
    setInitialPath(selected);
    setGeneration((g) => g + 1);
  }

  function open(next: string) {
    setInitialPath('/');
    setFile(next);
    setFrames((f) => ({ ...f, frame: 0, axis: 0, fixed: [] }));
  }

  return (
    <div className="bd-viewer">
      <FileBrowser
        browseURL={config.browseURL}
        proposal={config.proposal}
        file={file}
        onOpen={open}
      />
      <section className="bd-main">
        {file ? (
          <>
            <ViewerBar
              apiURL={config.apiURL}
              proposal={config.proposal}
              file={file}
              path={selected}
              registry={registry}
              h5webView={h5webView}
              generation={generation}
            >
              <LiveControls
                apiURL={config.apiURL}
                file={file}
                path={selected}
                follow={follow}
                onFollow={setFollow}
                onRefresh={refresh}
              />
            </ViewerBar>
            <div className="bd-modes" role="tablist" aria-label="Views">
              {MODES.map(([key, label, title]) => (
                <button
                  key={key}
                  type="button"
                  role="tab"
                  aria-selected={mode === key}
                  title={title}
                  data-testid={`mode-${key}`}
                  onClick={() => setMode(key)}
                >
                  {label}
                </button>
              ))}
            </div>
            {mode === 'frames' && (
              <ViewBoundary key={`${file}::${selected}`} resetKey={JSON.stringify(frames)}>
                <StackPlayer
                  key={`${file}::${selected}`}
                  apiURL={config.apiURL}
                  file={file}
                  path={selected}
                  state={frames}
                  onChange={setFrames}
                  generation={generation}
                  follow={follow}
                />
              </ViewBoundary>
            )}
            {mode === 'overlay' && (
              <ViewBoundary key={`${file}#${generation}`} resetKey={JSON.stringify(overlay)}>
                <OverlayPanel
                  apiURL={config.apiURL}
                  browseURL={config.browseURL}
                  file={file}
                  state={overlay}
                  onChange={setOverlay}
                />
              </ViewBoundary>
            )}
            {/* H5Web stays mounted (hidden) under our views so its state survives. */}
            <div
              className="bd-h5web"
              ref={setH5webRoot}
              data-testid="h5web"
              hidden={mode !== 'h5web'}
            >
              {h5web}
            </div>
          </>
        ) : (
          <p className="bd-empty" data-testid="no-file">
            Choose an HDF5 or NeXus file on the left.
          </p>
        )}
      </section>
    </div>
  );
}

export default ViewerApp;
