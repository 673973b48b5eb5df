import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { App } from './App';
import { ErrorBoundary } from './components/ErrorBoundary';
import { loadConfig } from './lib/config';
import { LANG_KEY, startLang, translator } from './lib/i18n';
import { mark } from './testHooks';

// Ask for /config.json before React even mounts: the relay URL is the first thing
// the page needs.
mark('start');
const config = loadConfig((u, init) => fetch(u, init), window.location);

function storedLang(): string | null {
  try {
    return localStorage.getItem(LANG_KEY);
  } catch {
    return null; // storage disabled
  }
}

// <html lang> follows the labels from the start (index.html declares the default).
const lang = startLang(navigator.languages, storedLang(), document.documentElement);

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <ErrorBoundary
      fallback={(e) => (
        <p className="page-error" role="alert">
          {translator(lang)('pageError')} ({e.message})
        </p>
      )}
    >
      <App config={config} initialLang={lang} />
    </ErrorBoundary>
  </StrictMode>,
);
