// Unit tests of the front end's pure modules (`npm test`): src/**/*.test.ts, run in Node.
// Kept apart from vite.config.ts so the app build (its HTML entry points) never sees them.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
