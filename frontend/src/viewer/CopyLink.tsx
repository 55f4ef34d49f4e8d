// "Link, no sidebar" in the viewer bar: the address of what is on screen (file, path and
// our views' state are kept in it, ./viewState.ts) with `sidebar=closed`, so the plot opens
// without H5Web's explorer; copied to the clipboard and shown for copying by hand.
import { useState } from 'react';

import { sidebarClosedLink } from './viewState';

function CopyLink() {
  const [link, setLink] = useState<string>();
  const [copied, setCopied] = useState<boolean>();

  async function copy() {
    // Read when clicked: our views rewrite the address without re-rendering the bar.
    const next = sidebarClosedLink();
    setLink(next);
    try {
      await navigator.clipboard.writeText(next);
      setCopied(true);
    } catch {
      setCopied(false); // no clipboard (insecure page, refused): copy from the field
    }
  }

  return (
    <span className="bd-copy-link">
      <button
        type="button"
        className="bd-link"
        title="Copy a link to this view that opens with H5Web's sidebar (the tree) closed"
        onClick={() => {
          copy().catch(() => undefined);
        }}
        data-testid="copy-sidebar-link"
      >
        Link, no sidebar
      </button>
      {link !== undefined && (
        <>
          <input
            type="text"
            readOnly
            value={link}
            aria-label="Link that opens with the sidebar closed"
            onFocus={(e) => e.target.select()}
            data-testid="sidebar-link"
          />
          <span className="bd-copy-status" role="status">
            {copied ? 'copied' : copied === false ? 'select and copy' : ''}
          </span>
        </>
      )}
    </span>
  );
}

export default CopyLink;
