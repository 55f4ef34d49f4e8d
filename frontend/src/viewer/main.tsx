// Entry of the viewer page (templates/viewer.html): reads its configuration from the mount
// element's data- attributes and starts the React app.
import '@h5web/app/styles.css';
import '../common/page.css';
import './viewer.css';

import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';

import { readConfig } from '../common/config';
import ViewerApp from './ViewerApp';

const element = document.getElementById('beamdesk-viewer');
if (element) {
  createRoot(element).render(
    <StrictMode>
      <ViewerApp config={readConfig(element)} />
    </StrictMode>,
  );
}
