// Left pane: the proposal's folders and files; HDF5/NeXus files open in the viewer.
import { useMemo, useState } from 'react';

import { dirname, formatDate, formatSize } from '../common/browse';
import { useListing } from '../common/useListing';

interface Props {
  browseURL: string;
  proposal: string;
  file: string;
  onOpen: (file: string) => void;
}

function FileBrowser(props: Props) {
  const { browseURL, proposal, file, onOpen } = props;
  const [folder, setFolder] = useState(() => dirname(file));
  const { listing, error } = useListing(browseURL, folder);
  const [filter, setFilter] = useState('');

  const entries = useMemo(() => {
    const needle = filter.trim().toLowerCase();
    const all = listing?.entries ?? [];
    return needle ? all.filter((e) => e.name.toLowerCase().includes(needle)) : all;
  }, [listing, filter]);

  const crumbs = folder ? folder.split('/') : [];

  return (
    <nav className="bd-files" aria-label="Files of the proposal" data-testid="file-browser">
      <div className="bd-crumbs">
        <button type="button" className="bd-link" onClick={() => setFolder('')}>
          {proposal}
        </button>
        {crumbs.map((name, i) => (
          <span key={crumbs.slice(0, i + 1).join('/')}>
            {' / '}
            <button
              type="button"
              className="bd-link"
              onClick={() => setFolder(crumbs.slice(0, i + 1).join('/'))}
            >
              {name}
            </button>
          </span>
        ))}
      </div>
      <input
        type="search"
        className="bd-filter"
        placeholder="Filter this folder"
        aria-label="Filter files"
        value={filter}
        onChange={(e) => setFilter(e.target.value)}
      />
      {error && <p className="flash error">{error}</p>}
      <ul className="bd-entries">
        {listing?.parent !== null && listing?.parent !== undefined && (
          <li>
            <button type="button" className="bd-link" onClick={() => setFolder(listing.parent ?? '')}>
              ..
            </button>
          </li>
        )}
        {entries.map((entry) => (
          <li
            key={entry.path}
            className={entry.path === file ? 'bd-current' : undefined}
            data-kind={entry.kind}
          >
            {entry.kind === 'folder' ? (
              <button type="button" className="bd-link" onClick={() => setFolder(entry.path)}>
                {entry.name}/
              </button>
            ) : entry.is_hdf5 ? (
              <button
                type="button"
                className="bd-link"
                title={`Open ${entry.path} in the viewer`}
                onClick={() => onOpen(entry.path)}
              >
                {entry.name}
              </button>
            ) : (
              <a
                className="bd-other"
                href={`/api/proposals/${proposal}/files/${entry.path
                  .split('/')
                  .map(encodeURIComponent)
                  .join('/')}`}
                title="Not HDF5: download"
              >
                {entry.name}
              </a>
            )}
            {entry.kind === 'file' && (
              <span className="bd-meta">
                {formatSize(entry.size)} · {formatDate(entry.mtime)}
              </span>
            )}
          </li>
        ))}
        {listing && entries.length === 0 && <li className="muted">Nothing here.</li>}
      </ul>
      {listing?.truncated && <p className="muted">Only the first entries are listed.</p>}
    </nav>
  );
}

export default FileBrowser;
