// The bar above H5Web: which file and object are shown, and downloads H5Web has no menu
// for (PNG rendered by the server, HDF5 subset, the whole file), plus a note when the
// image on screen is binned.
import { useEffect, useState } from 'react';

import { type BinRegistry, displayedShape } from '../common/downsample';
import { pngURL, subsetURL } from '../common/exports';
import { sessionFetcher } from '../common/fetcher';

interface Props {
  apiURL: string;
  proposal: string;
  file: string;
  path: string;
  registry: BinRegistry;
}

interface Info {
  kind: string;
  shape: number[] | null;
  numeric: boolean;
}

function useInfo(apiURL: string, file: string, path: string): Info | undefined {
  const [info, setInfo] = useState<Info>();
  useEffect(() => {
    let live = true;
    setInfo(undefined);
    sessionFetcher(`${apiURL}/meta`, { file, path }).then(
      (buffer) => {
        const meta = JSON.parse(new TextDecoder().decode(buffer)) as {
          kind: string;
          shape?: number[] | null;
          type?: { class?: number };
        };
        if (live) {
          const cls = meta.type?.class;
          setInfo({ kind: meta.kind, shape: meta.shape ?? null, numeric: cls === 0 || cls === 1 });
        }
      },
      () => live && setInfo(undefined),
    );
    return () => {
      live = false;
    };
  }, [apiURL, file, path]);
  return info;
}

function fileURL(proposal: string, file: string): string {
  return `/api/proposals/${proposal}/files/${file.split('/').map(encodeURIComponent).join('/')}`;
}

function ViewerBar(props: Props) {
  const { apiURL, proposal, file, path, registry } = props;
  const info = useInfo(apiURL, file, path);
  const binned = registry.get(path);
  const canSubset = info && (info.kind === 'dataset' || info.kind === 'group');
  const canPng = info?.kind === 'dataset' && info.numeric && info.shape?.length === 2;

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
        {canSubset && (
          <a href={subsetURL(apiURL, file, path)} download data-testid="download-subset">
            HDF5 subset
          </a>
        )}
        <a href={fileURL(proposal, file)} download data-testid="download-file">
          Whole file
        </a>
      </span>
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
