import { createElement } from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { translator } from '../lib/i18n';
import { ErrorBoundary, PanelError } from './ErrorBoundary';

// There is no DOM in these tests (and server rendering never runs error boundaries),
// so the boundary's contract with React is checked piece by piece; the browser test
// feeds malformed records to a real page.
describe('ErrorBoundary', () => {
  const fallback = (e: Error) => `failed: ${e.message}`;

  it('turns a render error into state, and that state into the fallback', () => {
    const st = ErrorBoundary.getDerivedStateFromError(new TypeError("Cannot read properties of null (reading 'pid')"));
    expect(st.error?.message).toContain('pid');
    expect(ErrorBoundary.getDerivedStateFromError('not an Error').error?.message).toBe('not an Error');
    const b = new ErrorBoundary({ fallback, children: 'panel', resetKey: 1 });
    expect(b.render()).toBe('panel');
    b.state = { ...b.state, ...st };
    expect(b.render()).toBe("failed: Cannot read properties of null (reading 'pid')");
  });

  it('keeps the error while the reset key stays, and retries the children when it changes', () => {
    const err = new Error('boom');
    const state = { error: err, resetKey: 1 };
    expect(ErrorBoundary.getDerivedStateFromProps({ fallback, resetKey: 1 }, state)).toBeNull();
    expect(ErrorBoundary.getDerivedStateFromProps({ fallback, resetKey: 2 }, state)).toEqual({ resetKey: 2, error: null });
  });

  it('renders the children untouched when nothing throws', () => {
    const html = renderToStaticMarkup(createElement(ErrorBoundary, { fallback }, createElement('b', null, 'ok')));
    expect(html).toBe('<b>ok</b>');
  });

  it('shows a message in place of the panel', () => {
    const html = renderToStaticMarkup(createElement(PanelError, { error: new Error('x is not a function'), t: translator('es') }));
    expect(html).toContain('role="alert"');
    expect(html).toContain('Este panel no se pudo dibujar');
    expect(html).toContain('x is not a function');
  });
});
