// Multi-page build: one HTML entry per front end (viewer now; a workbench later). The
// server reads .vite/manifest.json to put each entry's script and CSS tags in its Jinja
// page, so the HTML files emitted here are only used by `npm run dev`.
import react from '@vitejs/plugin-react';
import { resolve } from 'node:path';
import { defineConfig } from 'vite';

const here = import.meta.dirname;

export default defineConfig({
  base: '/static/app/',
  plugins: [react()],
  // `npm run dev`: sign in at http://localhost:5173/login, then open
  // /static/app/viewer.html?proposal=NUMBER&file=PATH; BeamDesk runs on port 8000.
  server: {
    proxy: Object.fromEntries(
      ['/api', '/login', '/static/beamdesk.css'].map((prefix) => [
        prefix,
        'http://127.0.0.1:8000',
      ]),
    ),
  },
  build: {
    outDir: resolve(here, '../beamdesk/web/static/app'),
    emptyOutDir: true,
    manifest: true,
    // H5Web is one large module graph; splitting it finer only adds requests.
    chunkSizeWarningLimit: 4000,
    rollupOptions: {
      input: {
        viewer: resolve(here, 'viewer.html'),
        workbench: resolve(here, 'workbench.html'),
      },
    },
  },
});
