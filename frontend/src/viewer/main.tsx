// Entry of the viewer page (templates/viewer.html): reads its configuration from the mount
// element's data- attributes and starts the React app.
import '@h5web/app/styles.css';
import '../common/page.css';
import './viewer.css';
import './viewer-options.css';

import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';

import { readConfig } from '../common/config';
import ViewerApp from './ViewerApp';

// H5Web 17's Surface view (a 3-D surface of a 2-D slice of numeric data) is offered only
// when this global is set (its `supportsDataset` reads it); it needs no other package.
(globalThis as { H5WEB_EXPERIMENTAL?: boolean }).H5WEB_EXPERIMENTAL = true;
// H5Web opens a dataset in the last view it supports unless one was chosen (its
// localStorage `h5web:preferredVis`), and Surface is last: keep Heatmap the first view of
// 2-D data until someone picks another (choosing Surface keeps Surface, as in H5Web).
try {
  if (window.localStorage.getItem('h5web:preferredVis') === null) {
    window.localStorage.setItem('h5web:preferredVis', JSON.stringify('Heatmap'));
  }
} catch {
  // no localStorage (private mode): H5Web opens 2-D data as a surface
}

const element = document.getElementById('beamdesk-viewer');
if (element) {
  createRoot(element).render(
    <StrictMode>
      <ViewerApp config={readConfig(element)} />
    </StrictMode>,
  );
}
