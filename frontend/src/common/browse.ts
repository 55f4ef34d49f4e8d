// Client of GET /api/proposals/{number}/browse: one folder of the proposal.
import type { components } from './api.gen';
import { problemOf } from './problem';

export type BrowseEntry = components['schemas']['FolderEntry'];
export type BrowseListing = components['schemas']['FolderListing'];

export async function browse(browseURL: string, path: string): Promise<BrowseListing> {
  const params = new URLSearchParams({ path });
  const response = await fetch(`${browseURL}?${params.toString()}`, {
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
  });
  if (!response.ok) {
    throw await problemOf(response);
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
