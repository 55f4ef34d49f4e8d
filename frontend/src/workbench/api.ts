// The workbench's calls to BeamDesk: same-origin fetch with the session cookie; state-changing
// calls echo the page's CSRF token. Errors are problem details (../common/problem.ts); their
// `detail` is shown as is. The answers' types are generated from the API (../common/api.gen.ts).
import type { components } from '../common/api.gen';
import { problemOf } from '../common/problem';

export { ApiError } from '../common/problem';

type Schemas = components['schemas'];

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

async function answer<T>(response: Response): Promise<T> {
  if (!response.ok) {
    throw await problemOf(response);
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

/** An answer's number lists with NaN for their nulls (non-finite values): the plots skip NaN. */
export type Plotted<T> = T extends (infer U)[]
  ? U extends number | null
    ? number[]
    : Plotted<U>[]
  : T extends object
    ? { [K in keyof T]: Plotted<T[K]> }
    : T;

export function plotted<T>(value: T): Plotted<T> {
  if (Array.isArray(value)) {
    return value.map((v: unknown) => (v === null ? NaN : plotted(v))) as Plotted<T>;
  }
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plotted(v)])) as Plotted<T>;
  }
  return value as Plotted<T>;
}

export type FitAnswer = Schemas['FitResult'];
export type FitResult = Plotted<FitAnswer>;
export type GroupResult = Schemas['FitGroup'];
export type SpectrumSource = Schemas['SpectrumSource'];
export type LineCandidate = Schemas['LineOut'];
export type JobSummary = Schemas['JobSummary'];
export type RgbChannel = Schemas['Channel'];
export type RgbAnswer = Schemas['RgbOut'];

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
