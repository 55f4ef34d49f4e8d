// Exports of a spectrum fit: CSV (one row per channel), JSON (everything the fit returned)
// and PNG (a plain 2-D canvas drawing: H5Web's WebGL canvas is not kept for reading).
import type { FitResult } from './api';

export function download(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function fitCSV(fit: FitResult): string {
  const groups = Object.keys(fit.contributions);
  const head = ['channel', 'energy_keV', 'data', 'fit', 'background', 'residual', ...groups];
  const rows = fit.channels.map((ch, i) =>
    [ch, fit.energy[i], fit.data[i], fit.fit[i], fit.background[i], fit.residuals[i],
      ...groups.map((g) => fit.contributions[g][i])]
      .map((v) => (typeof v === 'number' ? String(v) : ''))
      .join(','),
  );
  return `${head.map((h) => `"${h}"`).join(',')}\n${rows.join('\n')}\n`;
}

const COLOURS = ['#1f77b4', '#d62728', '#7f7f7f', '#2ca02c', '#9467bd', '#8c564b', '#e377c2',
  '#17becf', '#bcbd22', '#ff7f0e'];

export function fitPNG(fit: FitResult, log: boolean, title: string): Promise<Blob | null> {
  const width = 1200;
  const height = 700;
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d');
  if (!ctx) return Promise.resolve(null);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, width, height);
  const left = 80;
  const right = width - 20;
  const top = 40;
  const bottom = height - 60;
  const e0 = fit.energy[0];
  const e1 = fit.energy[fit.energy.length - 1];
  const tr = (v: number) => (log ? Math.log10(Math.max(v, 0.5)) : v);
  const ymax = Math.max(...fit.data.map(tr), ...fit.fit.map(tr));
  const ymin = log ? tr(0.5) : Math.min(0, ...fit.data);
  const x = (e: number) => left + ((e - e0) / (e1 - e0)) * (right - left);
  const y = (v: number) => bottom - ((tr(v) - ymin) / (ymax - ymin || 1)) * (bottom - top);
  const curve = (values: number[], colour: string, lineWidth = 1.2) => {
    ctx.strokeStyle = colour;
    ctx.lineWidth = lineWidth;
    ctx.beginPath();
    values.forEach((v, i) => (i ? ctx.lineTo(x(fit.energy[i]), y(v)) : ctx.moveTo(x(fit.energy[i]), y(v))));
    ctx.stroke();
  };
  ctx.strokeStyle = '#000';
  ctx.strokeRect(left, top, right - left, bottom - top);
  ctx.fillStyle = '#000';
  ctx.font = '16px sans-serif';
  ctx.fillText(title, left, 24);
  ctx.fillText('Energy (keV)', (left + right) / 2 - 40, height - 20);
  for (let k = Math.ceil(e0); k <= e1; k += 1) {
    ctx.fillText(String(k), x(k) - 4, bottom + 20);
  }
  curve(fit.data, '#000', 1);
  curve(fit.fit, COLOURS[1], 1.6);
  curve(fit.background, COLOURS[2]);
  const groups = Object.entries(fit.contributions)
    .sort((a, b) => Math.max(...b[1]) - Math.max(...a[1]))
    .slice(0, 7);
  groups.forEach(([name, values], k) => {
    const colour = COLOURS[(k + 3) % COLOURS.length];
    curve(values, colour);
    ctx.fillStyle = colour;
    ctx.fillText(name, right - 110, top + 20 + 18 * k);
  });
  return new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
}
