import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  EMPTY_OVERLAY,
  type FramesState,
  type OverlayState,
  readFollow,
  readSidebarOpen,
  readView,
  sidebarClosedLink,
  writeFollow,
  writeView,
} from './viewState';

// writeView/writeFollow edit the address bar; Node has no window, so a minimal one holds
// the address (a real URL) and replaceState sets it, as a browser does.
function useAddress(href: string): void {
  const location = {
    href,
    get search() {
      return new URL(this.href).search;
    },
  };
  const history = {
    replaceState(_state: unknown, _title: string, url: URL | string) {
      location.href = new URL(url, location.href).href;
    },
  };
  (globalThis as { window?: unknown }).window = { location, history };
}

const BASE = 'https://portal.example/proposals/20260008/viewer';

beforeEach(() => useAddress(`${BASE}?file=raw%2Fscan.nxs&path=%2Fentry%2Fdata`));
afterEach(() => {
  delete (globalThis as { window?: unknown }).window;
});

describe('links written before multi-file overlays', () => {
  it('opens the frame player where an old link pointed', () => {
    const { mode, frames } = readView(
      '?file=tomo.nxs&path=/entry/data/data&view=frames&frame=120&axis=0&fps=10&side=512',
    );
    expect(mode).toBe('frames');
    expect(frames).toEqual({ frame: 120, axis: 0, fps: 10, side: 512, fixed: [] });
  });

  it('reads overlay entries without file:: as datasets of the open file', () => {
    const { mode, overlay } = readView(
      '?file=scan.nxs&view=overlay&x=/entry/energy&y=/entry/i0&y=/entry/it',
    );
    expect(mode).toBe('overlay');
    expect(overlay).toEqual({
      x: { 'scan.nxs': '/entry/energy' },
      y: [
        { file: 'scan.nxs', path: '/entry/i0' },
        { file: 'scan.nxs', path: '/entry/it' },
      ],
      logX: false,
      logY: false,
    });
  });

  it('reads curves of other files and log axes', () => {
    const { overlay } = readView(
      '?file=a.nxs&view=overlay&x=/e&y=/mu&x=b.nxs::/e&y=b.nxs::/mu&log=y',
    );
    expect(overlay).toEqual({
      x: { 'a.nxs': '/e', 'b.nxs': '/e' },
      y: [
        { file: 'a.nxs', path: '/mu' },
        { file: 'b.nxs', path: '/mu' },
      ],
      logX: false,
      logY: true,
    });
  });

  it('falls back to defaults for missing or broken values', () => {
    const { mode, frames, overlay } = readView('?view=bogus&frame=-3&fps=0&side=abc&fix=2,-1,x');
    expect(mode).toBe('h5web');
    expect(frames).toEqual({ frame: 0, axis: 0, fps: 5, side: 512, fixed: [2, 0, 0] });
    expect(overlay).toEqual(EMPTY_OVERLAY);
  });
});

describe('round trips through the address bar', () => {
  it('frame player state, keeping file and path', () => {
    const frames: FramesState = { frame: 37, axis: 1, fps: 12, side: 0, fixed: [0, 4] };
    writeView('frames', frames);
    const url = new URL(window.location.href);
    expect(url.searchParams.get('file')).toBe('raw/scan.nxs');
    expect(url.searchParams.get('path')).toBe('/entry/data');
    expect(readView(window.location.search)).toMatchObject({ mode: 'frames', frames });
  });

  it('leaves fix out when every fixed index is 0', () => {
    writeView('frames', { frame: 1, axis: 0, fps: 5, side: 512, fixed: [0, 0] });
    expect(new URL(window.location.href).searchParams.has('fix')).toBe(false);
    expect(readView(window.location.search).frames.fixed).toEqual([]);
  });

  it('overlay of two files: the open file written without file::', () => {
    const overlay: OverlayState = {
      x: { 'raw/scan.nxs': '/entry/energy', 'raw/ref.nxs': '/entry/energy' },
      y: [
        { file: 'raw/scan.nxs', path: '/entry/mu' },
        { file: 'raw/ref.nxs', path: '/entry/mu' },
      ],
      logX: true,
      logY: true,
    };
    writeView('overlay', undefined, overlay);
    const query = new URL(window.location.href).searchParams;
    expect(query.getAll('y')).toEqual(['/entry/mu', 'raw/ref.nxs::/entry/mu']);
    expect(query.get('log')).toBe('xy');
    expect(readView(window.location.search)).toMatchObject({ mode: 'overlay', overlay });
  });

  it('back to H5Web removes every view parameter and nothing else', () => {
    useAddress(`${BASE}?file=a.nxs&path=%2Fe&view=overlay&x=%2Fe&y=%2Fmu&log=x&follow=1`);
    writeView('h5web');
    expect(window.location.href).toBe(`${BASE}?file=a.nxs&path=%2Fe&follow=1`);
  });

  it('follow=1 is added and removed', () => {
    writeFollow(true);
    expect(readFollow(window.location.search)).toBe(true);
    writeFollow(false);
    expect(readFollow(window.location.search)).toBe(false);
    expect(window.location.href).toBe(`${BASE}?file=raw%2Fscan.nxs&path=%2Fentry%2Fdata`);
  });
});

describe('sidebar=closed', () => {
  it('is read and added to a copied link', () => {
    expect(readSidebarOpen('?file=a.nxs')).toBe(true);
    expect(readSidebarOpen('?file=a.nxs&sidebar=closed')).toBe(false);
    expect(sidebarClosedLink(`${BASE}?file=a.nxs`)).toBe(`${BASE}?file=a.nxs&sidebar=closed`);
  });
});
