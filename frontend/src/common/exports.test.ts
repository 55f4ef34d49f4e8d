import { describe, expect, it } from 'vitest';

import { pngURL, setHeatmapView, subsetURL } from './exports';

describe('PNG parameters from H5Web heatmap settings', () => {
  it('writes flips, colour map (inverted), scale and range', () => {
    const params = new URLSearchParams({ format: 'png', vmin: '99' });
    setHeatmapView(params, {
      flipYAxis: true,
      flipXAxis: false,
      colorMap: 'Inferno',
      invertColorMap: true,
      scaleType: 'log',
      customDomain: [1, 1000],
    });
    expect(Object.fromEntries(params)).toEqual({
      format: 'png',
      flip_y: 'true',
      colormap: 'Inferno_r',
      scale: 'log',
      vmin: '1',
      vmax: '1000',
    });
  });

  it('leaves out what matplotlib would draw differently or the server cannot do', () => {
    const params = new URLSearchParams();
    setHeatmapView(params, {
      colorMap: 'Rainbow',
      scaleType: 'symlog',
      customDomain: [Number.NaN, 5],
      flipYAxis: 'yes',
    });
    expect(params.toString()).toBe('vmax=5');
  });

  it('builds the PNG and subset links (no saved settings: H5Web defaults)', () => {
    expect(pngURL('/api/h5/7', 'raw/a b.h5', '/entry/data', [2048, 1024], '3,:,:')).toBe(
      '/api/h5/7/data?file=raw%2Fa+b.h5&path=%2Fentry%2Fdata&format=png' +
        '&selection=3%2C%3A%2C%3A&downsample=2048x1024',
    );
    expect(subsetURL('/api/h5/7', 'raw/a.h5', '/entry')).toBe(
      '/api/h5/7/subset?file=raw%2Fa.h5&paths=%2Fentry',
    );
  });
});
