// The fetcher H5Web's H5GroveProvider uses: same-origin requests that carry the session
// cookie, plus the big-image binning of ./downsample.ts.
import { createBasicFetcher, type Fetcher } from '@h5web/app';

import { binAxis, binnedRequest, BinRegistry, castMeans, type H5GroveMeta } from './downsample';

/** Plain fetch with the session cookie (same origin only: no cross-site credentials). */
export const sessionFetcher: Fetcher = createBasicFetcher({ credentials: 'same-origin' });

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function binningFetcher(registry: BinRegistry, inner: Fetcher = sessionFetcher): Fetcher {
  return async (url, params, opts) => {
    const endpoint = url.slice(url.lastIndexOf('/') + 1);
    if (endpoint === 'meta') {
      const buffer = await inner(url, params, opts);
      const meta = JSON.parse(decoder.decode(buffer)) as H5GroveMeta;
      const rewritten = registry.rewriteMeta(params.path ?? '/', meta);
      return rewritten === meta ? buffer : encoder.encode(JSON.stringify(rewritten)).buffer;
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
