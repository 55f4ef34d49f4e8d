// The viewer page: file browser on the left, H5Web (explorer, search, inspector, NeXus and
// N-D views, export menu) on the right, talking to BeamDesk's h5grove-compatible API.
import { App, H5GroveProvider } from '@h5web/app';
import { useEffect, useMemo, useState } from 'react';

import { type PageConfig, rememberInURL } from '../common/config';
import { BinRegistry } from '../common/downsample';
import { makeGetExportURL } from '../common/exports';
import { binningFetcher } from '../common/fetcher';
import FileBrowser from './FileBrowser';
import OverlayPanel from './OverlayPanel';
import StackPlayer from './StackPlayer';
import ViewerBar from './ViewerBar';
import { type FramesState, type OverlayState, readView, type ViewMode, writeView } from './viewState';

const MODES: [ViewMode, string, string][] = [
  ['h5web', 'Explore', 'H5Web: tree, inspector, NeXus and N-D views, exports'],
  ['frames', 'Play frames', 'Play through the frames of the selected 3-D (or N-D) dataset'],
  ['overlay', 'Overlay 1-D', 'Several 1-D datasets of this file on one plot'],
];

/** Follow H5Web's selection: its explorer marks the chosen tree item aria-selected. */
function useSelectedPath(root: HTMLElement | null, initial: string): string {
  const [path, setPath] = useState(initial);
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
    };
    const observer = new MutationObserver(read);
    observer.observe(root, { subtree: true, childList: true, attributeFilter: ['aria-selected'] });
    return () => observer.disconnect();
  }, [root, initial]);
  return path;
}

function ViewerApp(props: { config: PageConfig }) {
  const { config } = props;
  const [file, setFile] = useState(config.file);
  const [initialPath, setInitialPath] = useState(config.path);
  const [h5webRoot, setH5webRoot] = useState<HTMLDivElement | null>(null);

  // One registry per file: what is binned depends on the file's datasets.
  const registry = useMemo(() => new BinRegistry(), [file]);
  const fetcher = useMemo(() => binningFetcher(registry), [registry]);
  const getExportURL = useMemo(
    () => makeGetExportURL(config.apiURL, file, registry),
    [config.apiURL, file, registry],
  );
  const selected = useSelectedPath(h5webRoot, initialPath);
  const [initialView] = useState(readView);
  const [mode, setMode] = useState<ViewMode>(initialView.mode);
  const [frames, setFrames] = useState<FramesState>(initialView.frames);
  const [overlay, setOverlay] = useState<OverlayState>(initialView.overlay);

  useEffect(() => rememberInURL(file, selected), [file, selected]);
  useEffect(() => writeView(mode, frames, overlay), [mode, frames, overlay]);

  function open(next: string) {
    setInitialPath('/');
    setFile(next);
    setFrames((f) => ({ ...f, frame: 0, axis: 0 }));
    setOverlay({ x: '', y: [] });
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
            />
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
              <StackPlayer
                key={`${file}::${selected}`}
                apiURL={config.apiURL}
                file={file}
                path={selected}
                state={frames}
                onChange={setFrames}
              />
            )}
            {mode === 'overlay' && (
              <OverlayPanel
                key={file}
                apiURL={config.apiURL}
                file={file}
                state={overlay}
                onChange={setOverlay}
              />
            )}
            {/* H5Web stays mounted (hidden) under our views so its state survives. */}
            <div
              className="bd-h5web"
              ref={setH5webRoot}
              data-testid="h5web"
              hidden={mode !== 'h5web'}
            >
              <H5GroveProvider
                key={file}
                url={config.apiURL}
                filepath={file}
                fetcher={fetcher}
                getExportURL={getExportURL}
              >
                <App initialPath={initialPath} disableDarkMode />
              </H5GroveProvider>
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
