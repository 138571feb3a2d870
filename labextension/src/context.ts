import { ServerConnection } from '@jupyterlab/services';
import React, { useContext, useEffect, useState } from 'react';

import { requestAPI } from './request';

/** What every section needs: where to ask, for which notebook, and the shell actions. */
export interface IPanelContext {
  serverSettings: ServerConnection.ISettings;
  /** Server-relative path of the followed notebook ('' for the server root). */
  notebookPath: string;
  /** Id of the followed notebook's kernel ('' when none): the server reads what it reported. */
  kernelId: string;
  /** The experiment chosen in the selector; '' shows the kernel's (or the folder's) own. */
  experiment: string;
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

/**
 * A route under `jupyter-mlops/api/` for the followed notebook: its path, its kernel (the
 * store the kernel uses), the chosen experiment, and extra query parameters.
 */
export function route(
  panel: Pick<IPanelContext, 'notebookPath' | 'kernelId' | 'experiment'>,
  endPoint: string,
  params: Record<string, string | number | undefined> = {}
): string {
  const query = new URLSearchParams({ path: panel.notebookPath });
  const scope = { kernel: panel.kernelId, experiment: panel.experiment };
  for (const [key, value] of Object.entries({ ...scope, ...params })) {
    if (value !== undefined && value !== '') {
      query.set(key, String(value));
    }
  }
  return `${endPoint}?${query.toString()}`;
}

export type Loaded<T> =
  | { status: 'loading'; data?: T }
  | { status: 'error'; message: string; data?: T }
  | { status: 'ready'; data: T };

/** GET a route; refetches when the route changes or the panel refreshes. `null` skips. */
export function useApi<T>(endPoint: string | null): Loaded<T> {
  const panel = usePanel();
  const [state, setState] = useState<Loaded<T>>({ status: 'loading' });
  useEffect(() => {
    if (endPoint === null) {
      return;
    }
    // A slow answer for a route the user has already left must not win.
    let stale = false;
    setState(previous => ({ status: 'loading', data: previous.data }));
    requestAPI<T>(endPoint, {}, panel.serverSettings).then(
      data => !stale && setState({ status: 'ready', data }),
      (error: Error) =>
        !stale && setState({ status: 'error', message: error.message })
    );
    return () => {
      stale = true;
    };
  }, [endPoint, panel.serverSettings, panel.refreshKey]);
  return state;
}
