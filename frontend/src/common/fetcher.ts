// The fetcher H5Web's H5GroveProvider uses: same-origin requests that carry the session
// cookie, plus the big-image binning of ./downsample.ts.
import { createBasicFetcher, type Fetcher } from '@h5web/app';

import type { components } from './api.gen';
import { auxiliariesToDraw, type ValueRange } from './auxScale';
import { binAxis, binnedRequest, BinRegistry, castMeans, type H5GroveMeta } from './downsample';

/** Plain fetch with the session cookie (same origin only: no cross-site credentials). */
export const sessionFetcher: Fetcher = createBasicFetcher({ credentials: 'same-origin' });

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Min and max of a dataset from /stats; undefined when the server cannot tell. */
async function rangeOf(
  inner: Fetcher,
  statsURL: string,
  params: Record<string, string>,
): Promise<ValueRange | undefined> {
  try {
    const buffer = await inner(statsURL, params);
    const stats = JSON.parse(decoder.decode(buffer)) as Partial<components['schemas']['H5Stats']>;
    return typeof stats.min === 'number' && typeof stats.max === 'number'
      ? { min: stats.min, max: stats.max }
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The attributes of an NXdata group with `@auxiliary_signals` limited to those that fit the
 * signal's scale (./auxScale.ts), so H5Web's NX Line does not flatten the signal.
 */
async function withDrawableAuxiliaries(
  inner: Fetcher,
  url: string,
  params: Record<string, string>,
  buffer: ArrayBuffer,
): Promise<ArrayBuffer> {
  let attrs: Record<string, unknown>;
  try {
    attrs = JSON.parse(decoder.decode(buffer)) as Record<string, unknown>;
  } catch {
    return buffer;
  }
  const { signal, auxiliary_signals: listed } = attrs;
  const names = typeof listed === 'string' ? [listed] : listed;
  if (typeof signal !== 'string' || !Array.isArray(names) || names.length === 0) {
    return buffer;
  }
  const group = (params.path ?? '/').replace(/\/+$/u, '');
  const statsURL = `${url.slice(0, url.lastIndexOf('/'))}/stats`;
  const range = (name: string) => rangeOf(inner, statsURL, { ...params, path: `${group}/${name}` });
  const [signalRange, ...auxRanges] = await Promise.all([signal, ...names.map(String)].map(range));
  const kept = auxiliariesToDraw(
    signalRange,
    names.map((name, i) => ({ name: String(name), range: auxRanges[i] })),
  );
  if (kept.length === names.length) {
    return buffer;
  }
  // The attribute stays (H5Web checks every attribute /meta lists has a value): a list
  // keeps its shape, a single name becomes "." (NeXus for none) when left out.
  const value = Array.isArray(listed) ? kept : (kept[0] ?? '.');
  const rewritten: Record<string, unknown> = { ...attrs, auxiliary_signals: value };
  return encoder.encode(JSON.stringify(rewritten)).buffer;
}

export function binningFetcher(registry: BinRegistry, inner: Fetcher = sessionFetcher): Fetcher {
  return async (url, params, opts) => {
    const endpoint = url.slice(url.lastIndexOf('/') + 1);
    if (endpoint === 'meta') {
      const buffer = await inner(url, params, opts);
      const meta = JSON.parse(decoder.decode(buffer)) as H5GroveMeta;
      const rewritten = registry.rewriteMeta(params.path ?? '/', meta);
      return rewritten === meta ? buffer : encoder.encode(JSON.stringify(rewritten)).buffer;
    }
    if (endpoint === 'attr') {
      return withDrawableAuxiliaries(inner, url, params, await inner(url, params, opts));
    }
    const info = endpoint === 'data' ? registry.get(params.path ?? '/') : undefined;
    if (!info || params.format !== 'bin') {
      return inner(url, params, opts);
    }
    if (info.shape.length === 1) {
      return binAxis(await inner(url, params, opts), info.ctor, info.factors[0]);
    }
    const request = binnedRequest(info, params);
    const buffer = await inner(url, request.params, opts);
    return request.means ? castMeans(buffer, info.ctor) : buffer;
  };
}
