// The workbench's calls to BeamDesk: same-origin fetch with the session cookie; state-changing
// calls echo the page's CSRF token. Errors are problem details; their `detail` is shown as is.

export interface WorkbenchConfig {
  proposal: string;
  file: string;
  path: string;
  csrf: string;
  mayRun: boolean;
}

export function readWorkbenchConfig(element: HTMLElement): WorkbenchConfig {
  const data = element.dataset;
  const query = new URLSearchParams(window.location.search);
  return {
    proposal: data.proposal ?? query.get('proposal') ?? '',
    file: data.file ?? query.get('file') ?? '',
    path: data.path ?? query.get('path') ?? '',
    csrf: data.csrf ?? '',
    mayRun: (data.mayRun ?? '1') === '1',
  };
}

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

async function answer<T>(response: Response): Promise<T> {
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const body = (await response.json()) as { detail?: unknown };
      if (typeof body.detail === 'string') {
        detail = body.detail;
      } else if (Array.isArray(body.detail)) {
        // FastAPI validation errors: a list of {loc, msg}
        detail = body.detail
          .map((d: { loc?: unknown[]; msg?: string }) => `${(d.loc ?? []).join('.')}: ${d.msg}`)
          .join('; ');
      }
    } catch {
      /* not JSON: keep the status line */
    }
    throw new ApiError(response.status, detail);
  }
  return (await response.json()) as T;
}

export async function getJSON<T>(url: string): Promise<T> {
  return answer<T>(await fetch(url, { credentials: 'same-origin' }));
}

export async function postJSON<T>(url: string, csrf: string, body: unknown): Promise<T> {
  return answer<T>(
    await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
      body: JSON.stringify(body),
    }),
  );
}

export async function deleteJSON<T>(url: string, csrf: string): Promise<T> {
  return answer<T>(
    await fetch(url, {
      method: 'DELETE',
      credentials: 'same-origin',
      headers: { 'x-csrf-token': csrf },
    }),
  );
}

// --- shapes of the answers (routes/xrf_api.py, docs/workbench.md) ---

/** The fit configuration as BeamDesk's TOML structure (docs/xrf.md); edited in place. */
export type XrfConfig = Record<string, unknown> & {
  peaks: Record<string, string[]>;
  detector: Record<string, unknown>;
  fit: Record<string, unknown>;
};

export interface GroupResult {
  area: number;
  sigma: number;
  mass_fraction: number | null;
  mass_fraction_sigma: number | null;
}

export interface FitResult {
  calibration: { zero: number; gain: number; quad: number };
  noise: number;
  fano: number;
  chi2_reduced: number | null;
  quantification: { method: string | null; reference: string | null; message?: string };
  groups: Record<string, GroupResult>;
  channels: number[];
  energy: number[];
  data: number[];
  fit: number[];
  background: number[];
  residuals: number[];
  contributions: Record<string, number[]>;
  spectrum: { energy: number[]; counts: number[] };
}

export interface SpectrumSource {
  file: string;
  path?: string | null;
  pixel?: number[] | null;
  rows?: number[] | null;
  cols?: number[] | null;
}

export interface LineCandidate {
  element: string;
  group: string;
  line: string;
  energy: number;
  distance: number;
}

export interface JobSummary {
  id: number;
  state: 'queued' | 'running' | 'done' | 'failed' | 'cancelled';
  progress: number;
  message: string;
  outputs: { path: string; groups?: string[] }[];
}

export interface RgbChannel {
  group: string;
  scaling: 'minmax' | 'percentile';
  transform: 'linear' | 'log' | 'sqrt';
}

export interface RgbAnswer {
  shape: [number, number];
  channels: Partial<Record<'red' | 'green' | 'blue', RgbChannel & { scaled: (number | null)[] }>>;
  scatter: {
    x_group: string;
    y_group: string;
    x: (number | null)[];
    y: (number | null)[];
    pearson_r: number;
  };
}

export function h5DataURL(
  proposal: string,
  file: string,
  path: string,
  format: string,
  extra: Record<string, string> = {},
): string {
  const params = new URLSearchParams({ file, path, format, ...extra });
  return `/api/proposals/${proposal}/h5/data?${params.toString()}`;
}
