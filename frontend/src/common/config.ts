// Page configuration handed over by the server in data- attributes of the mount element
// (the Content-Security-Policy forbids inline scripts, so no JSON blob in a <script>).

export interface PageConfig {
  /** Proposal number. */
  proposal: string;
  /** Absolute URL of the h5grove-compatible API, no trailing slash. */
  apiURL: string;
  /** Absolute URL of the folder listing API. */
  browseURL: string;
  /** File to open, relative to the proposal folder ('' when none was asked for). */
  file: string;
  /** HDF5 path to select first. */
  path: string;
}

function absolute(url: string): string {
  // H5Web builds export URLs with `new URL(...)`, which needs an absolute base.
  return new URL(url, window.location.href).href.replace(/\/+$/u, '');
}

export function readConfig(element: HTMLElement): PageConfig {
  const data = element.dataset;
  if (!data.api) {
    // `npm run dev`: viewer.html has no server-filled attributes; take them from the query.
    const query = new URLSearchParams(window.location.search);
    const proposal = query.get('proposal') ?? '';
    return {
      proposal,
      apiURL: absolute(`/api/proposals/${proposal}/h5`),
      browseURL: absolute(`/api/proposals/${proposal}/browse`),
      file: query.get('file') ?? '',
      path: query.get('path') || '/',
    };
  }
  return {
    proposal: data.proposal ?? '',
    apiURL: absolute(data.api),
    browseURL: absolute(data.browse ?? ''),
    file: data.file ?? '',
    path: data.path || '/',
  };
}

/** Keep file and HDF5 path in the address bar so the link opens the same view. */
export function rememberInURL(file: string, path: string): void {
  const url = new URL(window.location.href);
  if (file) {
    url.searchParams.set('file', file);
  } else {
    url.searchParams.delete('file');
  }
  if (path && path !== '/') {
    url.searchParams.set('path', path);
  } else {
    url.searchParams.delete('path');
  }
  if (url.href !== window.location.href) {
    window.history.replaceState(null, '', url);
  }
}
