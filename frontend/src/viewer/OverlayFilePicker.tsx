// The overlay's file chooser: the proposal's folders and HDF5 files, from the same browse API
// as the file browser, so curves of several files (three scans of a series) share one plot.
import { useState } from 'react';

import { dirname } from '../common/browse';
import { useListing } from '../common/useListing';

interface Props {
  browseURL: string;
  /** The file whose datasets are listed. */
  file: string;
  onPick: (file: string) => void;
}

function OverlayFilePicker(props: Props) {
  const { browseURL, file, onPick } = props;
  const [open, setOpen] = useState(false);
  const [folder, setFolder] = useState(() => dirname(file));
  const { listing, error } = useListing(browseURL, folder, open);

  return (
    <div className="bd-overlay-files" data-testid="overlay-files">
      <div className="bd-overlay-file">
        Datasets of <strong data-testid="overlay-list-file">{file}</strong>
        <button
          type="button"
          className="bd-link"
          aria-expanded={open}
          onClick={() => setOpen(!open)}
          data-testid="overlay-other-file"
        >
          {open ? 'close' : 'other file…'}
        </button>
      </div>
      {open && (
        <ul className="bd-entries">
          {error && <li className="bd-error">{error}</li>}
          <li className="muted">{folder || '/'}</li>
          {listing?.parent !== null && listing?.parent !== undefined && (
            <li>
              <button
                type="button"
                className="bd-link"
                onClick={() => setFolder(listing.parent ?? '')}
              >
                ..
              </button>
            </li>
          )}
          {(listing?.entries ?? [])
            .filter((e) => e.kind === 'folder' || e.is_hdf5)
            .map((entry) => (
              <li key={entry.path} className={entry.path === file ? 'bd-current' : undefined}>
                <button
                  type="button"
                  className="bd-link"
                  aria-label={entry.kind === 'folder' ? `folder ${entry.path}` : `list ${entry.path}`}
                  onClick={() => {
                    if (entry.kind === 'folder') {
                      setFolder(entry.path);
                    } else {
                      onPick(entry.path);
                      setOpen(false);
                    }
                  }}
                >
                  {entry.kind === 'folder' ? `${entry.name}/` : entry.name}
                </button>
              </li>
            ))}
        </ul>
      )}
    </div>
  );
}

export default OverlayFilePicker;
