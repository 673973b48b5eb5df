// Error boundaries: a panel that throws while rendering (a record shape nobody
// foresaw) shows a message in its place instead of React unmounting the whole page.
import { Component, type ReactNode } from 'react';
import type { T } from '../lib/i18n';

interface Props {
  children?: ReactNode;
  /** what to show instead of the children after they threw */
  fallback: (error: Error) => ReactNode;
  /** when this changes, the children are tried again (new data may render fine) */
  resetKey?: unknown;
}

interface State {
  error: Error | null;
  resetKey: unknown;
}

export class ErrorBoundary extends Component<Props, State> {
  state: State = { error: null, resetKey: this.props.resetKey };

  static getDerivedStateFromError(error: unknown): Partial<State> {
    return { error: error instanceof Error ? error : new Error(String(error)) };
  }

  static getDerivedStateFromProps(props: Props, state: State): Partial<State> | null {
    if (props.resetKey === state.resetKey) return null;
    return { resetKey: props.resetKey, error: null };
  }

  render(): ReactNode {
    return this.state.error ? this.props.fallback(this.state.error) : this.props.children;
  }
}

/** PanelError is the card shown in place of a panel that failed to render. */
export function PanelError({ error, t }: { error: Error; t: T }) {
  return (
    <section className="card panel-error" role="alert" data-testid="panel-error">
      <p>{t('panelError')}</p>
      <p className="muted small">{error.message}</p>
    </section>
  );
}
