// Live data: follow a dataset that grows while it is written (SWMR or plain appends).
//
// While Follow is on, the selected object's /meta is read every POLL_MS (one request at a
// time, none while the tab is hidden); when its shape changes the viewer refreshes (H5Web
// is remounted with a fresh cache, the frame player and overlay read again) and the frame
// player goes to the last frame. Two failed polls in a row stop following, with the message.
import { useEffect, useRef, useState } from 'react';

import type { H5GroveMeta } from '../common/downsample';
import { problemOf } from '../common/problem';

/** Time between the end of one /meta poll and the start of the next. */
export const POLL_MS = 2000;
/**
 * Failed polls in a row that stop following: one is retried, since a plain writer that
 * rewrites the file's structure can make one read fail while it appends.
 */
export const FAILURES_TO_STOP = 2;

export interface LiveStatus {
  /** Shape of the followed dataset (of an NXdata group's largest child dataset). */
  shape: number[] | null;
  /** When the shape last changed while following; null = not since following began. */
  changedAt: Date | null;
  /** When following began (or the followed object last changed to another one). */
  since: Date | null;
  /** Why following stopped, if it stopped on an error. */
  error?: string;
}

/**
 * What a poll compares: the dataset's shape, or for a group the shapes of its child
 * datasets (an NXdata signal and its axes grow together); `shape` is the one to show.
 */
export function growthOf(meta: H5GroveMeta): { key: string; shape: number[] | null } {
  if (meta.kind === 'dataset') {
    const shape = meta.shape ?? null;
    return { key: JSON.stringify(shape), shape };
  }
  const children = (meta.children ?? []).filter((c) => c.kind === 'dataset');
  const key = JSON.stringify(children.map((c) => [c.name, c.shape ?? null]));
  let shape: number[] | null = null;
  let size = -1;
  for (const child of children) {
    const s = child.shape ?? [];
    const n = s.reduce((a, b) => a * b, 1);
    if (s.length > (shape?.length ?? -1) || (s.length === shape?.length && n > size)) {
      shape = s;
      size = n;
    }
  }
  return { key, shape };
}

async function readMeta(
  apiURL: string,
  file: string,
  path: string,
  signal: AbortSignal,
): Promise<H5GroveMeta> {
  const query = new URLSearchParams({ file, path }).toString();
  const response = await fetch(`${apiURL}/meta?${query}`, {
    credentials: 'same-origin',
    cache: 'no-store',
    signal,
  });
  if (!response.ok) {
    throw await problemOf(response);
  }
  return (await response.json()) as H5GroveMeta;
}

/** `13:05:09`: the time of day, the same in every locale. */
export function clock(date: Date): string {
  return [date.getHours(), date.getMinutes(), date.getSeconds()]
    .map((n) => String(n).padStart(2, '0'))
    .join(':');
}

/**
 * Poll `path`'s /meta while `enabled`; call `onGrow` when its shape changes and `onStop`
 * (with the message) when a poll fails. Polling restarts for another file or path.
 */
export function useFollow(options: {
  apiURL: string;
  file: string;
  path: string;
  enabled: boolean;
  onGrow: () => void;
  onStop: (message: string) => void;
}): LiveStatus {
  const { apiURL, file, path, enabled } = options;
  const [status, setStatus] = useState<LiveStatus>({ shape: null, changedAt: null, since: null });
  const callbacks = useRef(options);
  callbacks.current = options;

  // A message about another file or object is not kept.
  useEffect(() => {
    setStatus((old) => (old.error ? { ...old, error: undefined } : old));
  }, [file, path]);

  useEffect(() => {
    if (!enabled || !file) {
      return undefined;
    }
    setStatus({ shape: null, changedAt: null, since: new Date() });
    const abort = new AbortController();
    let stopped = false;
    let busy = false;
    let timer: number | undefined;
    let last: string | undefined;
    let failures = 0;

    const poll = async () => {
      timer = undefined;
      if (stopped || busy || document.hidden) {
        return;
      }
      busy = true;
      let message: string | undefined;
      try {
        const { key, shape } = growthOf(await readMeta(apiURL, file, path, abort.signal));
        if (!stopped) {
          failures = 0;
          const grew = last !== undefined && key !== last;
          last = key;
          setStatus((old) => ({ ...old, shape, changedAt: grew ? new Date() : old.changedAt }));
          if (grew) {
            callbacks.current.onGrow();
          }
        }
      } catch (err) {
        message = err instanceof Error ? err.message : String(err);
      } finally {
        busy = false;
      }
      if (stopped) {
        return;
      }
      if (message !== undefined) {
        failures += 1;
        if (failures >= FAILURES_TO_STOP) {
          stopped = true;
          setStatus((old) => ({ ...old, error: message }));
          callbacks.current.onStop(message);
          return;
        }
      }
      if (!document.hidden) {
        timer = window.setTimeout(poll, POLL_MS);
      }
    };

    // Hidden: no timer runs; visible again: poll at once, then every POLL_MS.
    const onVisibility = () => {
      if (document.hidden) {
        window.clearTimeout(timer);
        timer = undefined;
      } else if (timer === undefined && !busy) {
        poll();
      }
    };
    document.addEventListener('visibilitychange', onVisibility);
    poll();
    return () => {
      stopped = true;
      abort.abort();
      window.clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisibility);
    };
  }, [enabled, apiURL, file, path]);

  return status;
}
