// The bar above H5Web: which file and object are shown, and downloads H5Web has no menu
// for (PNG rendered by the server, HDF5 subset, the whole file), plus a note when the
// image on screen is binned, and the CSV of a NeXus line (axis, signal, errors, auxiliary
// signals) when an NXdata group is selected.
import { type ReactNode, useEffect, useState } from 'react';

import { type BinRegistry, displayedShape, type H5GroveMeta } from '../common/downsample';
import { pngURL, subsetURL } from '../common/exports';
import { sessionFetcher } from '../common/fetcher';
import CopyLink from './CopyLink';
import type { H5WebView } from './viewState';

interface Props {
  apiURL: string;
  proposal: string;
  file: string;
  path: string;
  registry: BinRegistry;
  /** H5Web's active tab and slice (ViewerApp reads them from its DOM). */
  h5webView: H5WebView;
  /** Bumped by Refresh: the selected object's metadata is read again. */
  generation?: number;
  /** More controls at the end of the bar (Refresh and Follow). */
  children?: ReactNode;
}

interface Info {
  kind: string;
  shape: number[] | null;
  numeric: boolean;
  /** NXdata group: the shape of its signal (from @signal). */
  signalShape?: number[];
}

const decoder = new TextDecoder();

function parse<T>(buffer: ArrayBuffer): T {
  return JSON.parse(decoder.decode(buffer)) as T;
}

/** The signal's shape when `meta` is an NXdata group naming a signal dataset. */
async function nxSignalShape(
  apiURL: string,
  file: string,
  path: string,
  meta: H5GroveMeta,
): Promise<number[] | undefined> {
  const names = ((meta.attributes ?? []) as { name: string }[]).map((a) => a.name);
  if (meta.kind !== 'group' || !names.includes('NX_class') || !names.includes('signal')) {
    return undefined;
  }
  const attrs = parse<{ NX_class?: unknown; signal?: unknown }>(
    await sessionFetcher(`${apiURL}/attr`, { file, path }),
  );
  if (attrs.NX_class !== 'NXdata') {
    return undefined;
  }
  const signal = (meta.children ?? []).find((c) => c.name === String(attrs.signal));
  return signal?.kind === 'dataset' && signal.shape ? signal.shape : undefined;
}

/** `/h5/line` URL: one line of an NXdata group as CSV with axis, errors and auxiliaries. */
export function lineURL(apiURL: string, file: string, path: string, selection?: string): string {
  const params = new URLSearchParams({ file, path });
  if (selection) {
    params.set('selection', selection);
  }
  return `${apiURL}/line?${params.toString()}`;
}

function useInfo(
  apiURL: string,
  file: string,
  path: string,
  generation: number,
): Info | undefined {
  const [info, setInfo] = useState<Info>();
  useEffect(() => {
    let live = true;
    setInfo(undefined);
    sessionFetcher(`${apiURL}/meta`, { file, path }).then(
      (buffer) => {
        const meta = parse<H5GroveMeta>(buffer);
        const cls = meta.type?.class;
        const base = {
          kind: meta.kind ?? '',
          shape: meta.shape ?? null,
          numeric: cls === 0 || cls === 1,
        };
        if (live) {
          setInfo(base);
        }
        nxSignalShape(apiURL, file, path, meta).then(
          (signalShape) => live && signalShape && setInfo({ ...base, signalShape }),
          () => undefined,
        );
      },
      () => live && setInfo(undefined),
    );
    return () => {
      live = false;
    };
  }, [apiURL, file, path, generation]);
  return info;
}

/**
 * Selection of the NeXus line on screen: '' for a 1-D signal; for an N-D signal shown as
 * "NX Line", H5Web's slider positions with ':' on the plotted dimension; undefined when no
 * line is shown.
 */
export function nxLineSelection(shape: number[], view: H5WebView): string | undefined {
  if (shape.length === 1) {
    return '';
  }
  if (view.tab !== 'NX Line') {
    return undefined;
  }
  const members = shape.map((_, d) => view.slice[d] ?? ':');
  return members.filter((m) => m === ':').length === 1 ? members.join(',') : undefined;
}

function fileURL(proposal: string, file: string): string {
  return `/api/proposals/${proposal}/files/${file.split('/').map(encodeURIComponent).join('/')}`;
}

function ViewerBar(props: Props) {
  const { apiURL, proposal, file, path, registry, h5webView, generation = 0, children } = props;
  const info = useInfo(apiURL, file, path, generation);
  const binned = registry.get(path);
  const canSubset = info && (info.kind === 'dataset' || info.kind === 'group');
  const canPng = info?.kind === 'dataset' && info.numeric && info.shape?.length === 2;
  const signalShape = info?.signalShape;
  const lineSelection = signalShape && nxLineSelection(signalShape, h5webView);
  return (
    <div className="bd-bar" data-testid="viewer-bar">
      <span className="bd-where">
        <strong data-testid="viewer-file">{file}</strong>
        <code data-testid="viewer-path">{path}</code>
      </span>
      <span className="bd-downloads">
        {canPng && (
          <a
            href={pngURL(apiURL, file, path, binned && displayedShape(binned))}
            download
            data-testid="download-png"
          >
            PNG
          </a>
        )}
        {lineSelection !== undefined && (
          <a
            href={lineURL(apiURL, file, path, lineSelection || undefined)}
            download
            data-testid="download-line"
            title="The NeXus line: axis values, signal, errors and auxiliary signals, with units"
          >
            {lineSelection ? `Line CSV [${lineSelection}]` : 'Line CSV'}
          </a>
        )}
        {canSubset && (
          <a href={subsetURL(apiURL, file, path)} download data-testid="download-subset">
            HDF5 subset
          </a>
        )}
        <a href={fileURL(proposal, file)} download data-testid="download-file">
          Whole file
        </a>
        <CopyLink />
      </span>
      {children}
      {binned && binned.shape.length > 1 && (
        <span className="bd-note" data-testid="binned-note">
          Shown binned: {binned.shape.join('×')} → {displayedShape(binned).join('×')} (mean of{' '}
          {binned.factors.filter((f) => f > 1).join('×')} bins); NPY/TIFF exports are full
          resolution.
        </span>
      )}
    </div>
  );
}

export default ViewerBar;
