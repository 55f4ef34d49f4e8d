// Client of GET /api/proposals/{number}/browse: one folder of the proposal.

export interface BrowseEntry {
  name: string;
  path: string;
  kind: 'folder' | 'file';
  size: number;
  mtime: string;
  is_hdf5: boolean;
}

export interface BrowseListing {
  path: string;
  parent: string | null;
  entries: BrowseEntry[];
  truncated: boolean;
}

export async function browse(browseURL: string, path: string): Promise<BrowseListing> {
  const params = new URLSearchParams({ path });
  const response = await fetch(`${browseURL}?${params.toString()}`, {
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
  });
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const problem = (await response.json()) as { detail?: string };
      detail = problem.detail ?? detail;
    } catch {
      // not JSON: keep the status line
    }
    throw new Error(detail);
  }
  return (await response.json()) as BrowseListing;
}

export function formatSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function formatDate(iso: string): string {
  // ISO 8601 UTC from the server; show "YYYY-MM-DD HH:MM" like the portal's pages.
  return iso.slice(0, 16).replace('T', ' ');
}

export function dirname(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}
