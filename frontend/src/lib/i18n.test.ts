/// <reference types="vite/client" />
import { describe, expect, it } from 'vitest';
import indexHtml from '../../index.html?raw';
import { DEFAULT_LANG, detectLang, DICTS, fmt, startLang, translator, vmLabel } from './i18n';

describe('i18n', () => {
  it('prefers Spanish when the browser prefers it', () => {
    expect(detectLang(['es-MX', 'en-US'])).toBe('es');
    expect(detectLang(['en-US', 'es'])).toBe('en');
    expect(detectLang(['fr-FR', 'es-ES'])).toBe('es');
    expect(detectLang(['de'])).toBe('en');
    expect(detectLang(undefined)).toBe('en');
  });

  it('index.html declares the default language, and the start sets the detected one on <html>', () => {
    expect(DEFAULT_LANG).toBe('en');
    expect(/<html lang="([^"]+)"/.exec(indexHtml)?.[1]).toBe(DEFAULT_LANG);
    const root = { lang: 'xx' };
    expect(startLang(['es-ES', 'en'], null, root)).toBe('es');
    expect(root.lang).toBe('es');
    expect(startLang(['de-DE'], null, root)).toBe('en');
    expect(root.lang).toBe('en');
    expect(startLang(['es-AR'], 'en', root)).toBe('en');
    expect(root.lang).toBe('en');
  });

  it('a stored choice wins over the browser', () => {
    expect(detectLang(['es'], 'en')).toBe('en');
    expect(detectLang(['en'], 'es')).toBe('es');
    expect(detectLang(['en'], 'xx')).toBe('en');
  });

  it('has every key in both languages and fills placeholders', () => {
    expect(Object.keys(DICTS.es).sort()).toEqual(Object.keys(DICTS.en).sort());
    for (const v of Object.values(DICTS.es)) expect(v.length).toBeGreaterThan(0);
    expect(translator('es')('retryIn', { s: 3 })).toBe('reintento en 3 s');
    expect(translator('en')('state_live')).toBe('live');
    expect(translator('es')('state_reconnecting')).toBe('reconectando');
  });

  it('labels a VM without a name', () => {
    expect(vmLabel(translator('en'), '')).toBe('(unnamed)');
    expect(vmLabel(translator('es'), '')).toBe('(sin nombre)');
    expect(vmLabel(translator('es'), 'vm-1')).toBe('vm-1');
  });

  it('formats numbers per language', () => {
    expect(fmt('en', 1234.56, 1)).toBe('1,234.6');
    expect(fmt('es', 12.34, 1)).toBe('12,3');
    expect(fmt('es', NaN)).toBe('—');
  });
});
