// Entry of the XRF workbench page (templates/workbench.html): reads its configuration from
// the mount element's data- attributes and starts the React app.
import '@h5web/lib/styles.css';
import '../common/page.css';
import './workbench.css';

import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';

import { readWorkbenchConfig } from './api';
import WorkbenchApp from './WorkbenchApp';

const element = document.getElementById('beamdesk-workbench');
if (element) {
  createRoot(element).render(
    <StrictMode>
      <WorkbenchApp page={readWorkbenchConfig(element)} />
    </StrictMode>,
  );
}
