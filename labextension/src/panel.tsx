import { ServerConnection } from '@jupyterlab/services';
import { ReactWidget, refreshIcon } from '@jupyterlab/ui-components';
import React, { useEffect, useState } from 'react';

import { requestAPI } from './request';
import { DriftSection } from './sections/drift';
import { ModelsSection } from './sections/models';
import { RunsSection } from './sections/runs';
import { SnapshotsSection } from './sections/snapshots';
import { StoreInfo } from './types';

/** The left-sidebar panel: the store of the current notebook's folder and what it holds. */
export class MlopsPanel extends ReactWidget {
  constructor(private readonly serverSettings: ServerConnection.ISettings) {
    super();
    this.addClass('jp-MlopsPanel');
  }

  /** Server-relative path of the notebook the panel follows; '' when none is open. */
  get notebookPath(): string {
    return this._notebookPath;
  }

  set notebookPath(path: string) {
    if (path !== this._notebookPath) {
      this._notebookPath = path;
      this.update();
    }
  }

  protected render(): JSX.Element {
    return (
      <PanelView
        serverSettings={this.serverSettings}
        notebookPath={this._notebookPath}
      />
    );
  }

  private _notebookPath = '';
}

type StoreState =
  | { status: 'loading' }
  | { status: 'error'; message: string }
  | { status: 'ready'; store: StoreInfo };

function PanelView(props: {
  serverSettings: ServerConnection.ISettings;
  notebookPath: string;
}): JSX.Element {
  const [state, setState] = useState<StoreState>({ status: 'loading' });
  const [refreshCount, setRefreshCount] = useState(0);

  useEffect(() => {
    // A slow answer for a notebook the user has already left must not win.
    let stale = false;
    setState({ status: 'loading' });
    requestAPI<StoreInfo>(
      `store?path=${encodeURIComponent(props.notebookPath)}`,
      {},
      props.serverSettings
    ).then(
      store => !stale && setState({ status: 'ready', store }),
      (error: Error) =>
        !stale && setState({ status: 'error', message: error.message })
    );
    return () => {
      stale = true;
    };
  }, [props.notebookPath, props.serverSettings, refreshCount]);

  return (
    <div className="jp-MlopsPanel-content" data-testid="mlops-panel">
      <header className="jp-MlopsPanel-header">
        <h2 className="jp-MlopsPanel-title">MLOps</h2>
        <button
          className="jp-MlopsPanel-refresh"
          data-testid="mlops-refresh"
          title="Refresh"
          aria-label="Refresh"
          disabled={state.status === 'loading'}
          onClick={() => setRefreshCount(refreshCount + 1)}
        >
          <refreshIcon.react tag="span" elementSize="normal" />
        </button>
      </header>
      <StoreView state={state} />
      <RunsSection />
      <SnapshotsSection />
      <ModelsSection />
      <DriftSection />
    </div>
  );
}

function StoreView(props: { state: StoreState }): JSX.Element {
  const { state } = props;
  if (state.status === 'loading') {
    return (
      <p className="jp-MlopsPanel-status" data-testid="mlops-loading">
        Loading store…
      </p>
    );
  }
  if (state.status === 'error') {
    return (
      <p className="jp-MlopsPanel-error" data-testid="mlops-error" role="alert">
        {state.message}
      </p>
    );
  }
  const { store } = state;
  return (
    <dl className="jp-MlopsStore" data-testid="mlops-store">
      <dt>Home</dt>
      <dd title={store.home}>
        {store.home}
        {store.home_exists === false && (
          <span className="jp-MlopsStore-note"> (created on first use)</span>
        )}
      </dd>
      <dt>Tracking</dt>
      <dd title={store.tracking_uri}>{store.tracking_uri}</dd>
      <dt>Snapshots</dt>
      <dd title={store.snapshot_store}>{store.snapshot_store}</dd>
      <dt>Experiment</dt>
      <dd title={store.experiment}>{store.experiment}</dd>
    </dl>
  );
}
