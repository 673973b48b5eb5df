import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { App } from './App';
import { loadConfig } from './lib/config';
import { mark } from './testHooks';

// Ask for /config.json before React even mounts: the relay URL is the first thing
// the page needs.
mark('start');
const config = loadConfig((u, init) => fetch(u, init), window.location);

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App config={config} />
  </StrictMode>,
);
