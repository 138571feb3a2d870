import React, { useContext, useEffect, useState } from 'react';

import { IScope } from './api';

/** What every section needs: where to ask, for which notebook, and the shell actions. */
export interface IPanelContext extends IScope {
  /** Bumped by the refresh button and whenever a notebook cell finishes running. */
  refreshKey: number;
  /** Open a drift report's HTML in a main-area tab. */
  openReport: (title: string, html: string) => void;
  /** Select the cell with this id in the open notebook; false when it is not open. */
  goToCell: (notebook: string, cellId: string) => boolean;
}

export const PanelContext = React.createContext<IPanelContext | null>(null);

export function usePanel(): IPanelContext {
  const context = useContext(PanelContext);
  if (context === null) {
    throw new Error('MLOps sections must be rendered inside the panel');
  }
  return context;
}

export type Loaded<T> =
  | { status: 'loading'; data?: T }
  | { status: 'error'; message: string; data?: T }
  | { status: 'ready'; data: T };

/**
 * Call one `api` function for the panel's scope; calls again when `key` (what the call
 * depends on besides the scope) or the scope changes, or the panel refreshes. `null` skips.
 */
export function useApi<T>(
  load: ((scope: IScope) => Promise<T>) | null,
  key: string = ''
): Loaded<T> {
  const panel = usePanel();
  const [state, setState] = useState<Loaded<T>>({ status: 'loading' });
  useEffect(() => {
    if (load === null) {
      return;
    }
    // A slow answer for a request the user has already left must not win.
    let stale = false;
    setState(previous => ({ status: 'loading', data: previous.data }));
    load(panel).then(
      data => !stale && setState({ status: 'ready', data }),
      (error: Error) =>
        !stale && setState({ status: 'error', message: error.message })
    );
    return () => {
      stale = true;
    };
  }, [
    key,
    load === null,
    panel.serverSettings,
    panel.notebookPath,
    panel.kernelId,
    panel.experiment,
    panel.refreshKey
  ]);
  return state;
}
