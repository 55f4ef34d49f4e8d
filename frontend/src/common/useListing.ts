// One folder's listing from the browse API, re-read when the folder changes; shared by the
// viewer's file browser and the overlay's file chooser. A stale answer (the folder changed
// meanwhile, or the component went away) is dropped.
import { useEffect, useState } from 'react';

import { browse, type BrowseListing } from './browse';

export function useListing(
  browseURL: string,
  folder: string,
  enabled = true,
): { listing?: BrowseListing; error?: string } {
  const [listing, setListing] = useState<BrowseListing>();
  const [error, setError] = useState<string>();

  useEffect(() => {
    if (!enabled) {
      return undefined;
    }
    let live = true;
    setError(undefined);
    browse(browseURL, folder).then(
      (result) => live && setListing(result),
      (err: unknown) => live && setError(err instanceof Error ? err.message : String(err)),
    );
    return () => {
      live = false;
    };
  }, [browseURL, folder, enabled]);

  return { listing, error };
}
