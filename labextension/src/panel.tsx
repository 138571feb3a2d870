import { ServerConnection } from '@jupyterlab/services';
import { Message } from '@lumino/messaging';
import { ReactWidget, refreshIcon } from '@jupyterlab/ui-components';
import React, { useEffect, useMemo, useState } from 'react';

import { IPanelContext, PanelContext, route, useApi, usePanel } from './context';
import { requestAPI } from './request';
import { DriftSection } from './sections/drift';
import { ModelsSection } from './sections/models';
import { RunsSection } from './sections/runs';
import { SnapshotsSection } from './sections/snapshots';
import { ExperimentList, StoreInfo } from './types';

/** What the panel asks of the application shell. */
export interface IShellActions {
  openReport: IPanelContext['openReport'];
  goToCell: IPanelContext['goToCell'];
}

/** The left-sidebar panel: the store of the current notebook's folder and what it holds. */
export class MlopsPanel extends ReactWidget {
  constructor(
    private readonly serverSettings: ServerConnection.ISettings,
    private readonly actions: IShellActions
  ) {
    super();
    this.addClass('jp-MlopsPanel');
  }

  /** Reload every section (after a cell ran, or on the refresh button); deferred while hidden. */
  refresh(): void {
    if (!this.isVisible) {
      this._stale = true;
      return;
    }
    this._stale = false;
    this._refreshKey += 1;
    this.update();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    if (this._stale) {
      this.refresh();
    }
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

  /** Id of the followed notebook's kernel; '' while it has none. */
  get kernelId(): string {
    return this._kernelId;
  }

  set kernelId(id: string) {
    if (id !== this._kernelId) {
      this._kernelId = id;
      this.update();
    }
  }

  protected render(): JSX.Element {
    return (
      <PanelView
        serverSettings={this.serverSettings}
        notebookPath={this._notebookPath}
        kernelId={this._kernelId}
        refreshKey={this._refreshKey}
        actions={this.actions}
        onRefresh={() => this.refresh()}
      />
    );
  }

  private _notebookPath = '';
  private _kernelId = '';
  private _refreshKey = 0;
  private _stale = false;
}

type StoreState =
  | { status: 'loading' }
  | { status: 'error'; message: string }
  | { status: 'ready'; store: StoreInfo };

function PanelView(props: {
  serverSettings: ServerConnection.ISettings;
  notebookPath: string;
  kernelId: string;
  refreshKey: number;
  actions: IShellActions;
  onRefresh: () => void;
}): JSX.Element {
  const [state, setState] = useState<StoreState>({ status: 'loading' });
  // The experiment picked in the selector, for this notebook and kernel only.
  const [picked, setPicked] = useState({ scope: '', experiment: '' });
  const scope = `${props.notebookPath}\n${props.kernelId}`;
  const experiment = picked.scope === scope ? picked.experiment : '';
  const context = useMemo<IPanelContext>(
    () => ({
      serverSettings: props.serverSettings,
      notebookPath: props.notebookPath,
      kernelId: props.kernelId,
      experiment,
      refreshKey: props.refreshKey,
      ...props.actions
    }),
    [
      props.serverSettings,
      props.notebookPath,
      props.kernelId,
      experiment,
      props.refreshKey,
      props.actions
    ]
  );

  useEffect(() => {
    // A slow answer for a notebook the user has already left must not win.
    let stale = false;
    // A refresh keeps the sections (and what they have open) on screen while it reloads.
    setState(previous =>
      previous.status === 'ready' && previous.store.notebook === (props.notebookPath || null)
        ? previous
        : { status: 'loading' }
    );
    requestAPI<StoreInfo>(
      route({ ...context, experiment: '' }, 'store'),
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
  }, [props.notebookPath, props.kernelId, props.serverSettings, props.refreshKey]);

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
          onClick={props.onRefresh}
        >
          <refreshIcon.react tag="span" elementSize="normal" />
        </button>
      </header>
      <StoreView state={state} />
      {state.status !== 'error' && (
        <PanelContext.Provider value={context}>
          {state.status === 'ready' && (
            <ExperimentPicker
              store={state.store}
              chosen={experiment}
              onChoose={name => setPicked({ scope, experiment: name })}
            />
          )}
          {/* Keyed by notebook: another notebook starts with every section closed. */}
          <React.Fragment key={props.notebookPath}>
            <RunsSection />
            <SnapshotsSection />
            <ModelsSection />
            <DriftSection />
          </React.Fragment>
        </PanelContext.Provider>
      )}
    </div>
  );
}

/** Where the shown store comes from, in words: the live kernel, or the notebook's folder. */
function storeOrigin(store: StoreInfo): string {
  if (store.sources.kernel) {
    return 'as the notebook’s kernel reported it';
  }
  return store.notebook
    ? 'resolved from the notebook’s folder (its kernel has not loaded jupyter_mlops)'
    : 'resolved from the folder (no notebook open)';
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
  const live = Boolean(store.sources.kernel);
  return (
    <>
      <p
        className={`jp-MlopsStore-origin${live ? ' jp-mod-live' : ''}`}
        data-testid="mlops-store-origin"
        data-origin={live ? 'kernel' : 'folder'}
      >
        {live ? 'Kernel store' : 'Folder store'} · {storeOrigin(store)}
      </p>
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
        <dd title={`${store.experiment} (from ${store.sources.experiment ?? 'default'})`}>
          {store.experiment}
        </dd>
      </dl>
    </>
  );
}

/** Choose which experiment the runs and drift sections show; '' is the kernel's own. */
function ExperimentPicker(props: {
  store: StoreInfo;
  chosen: string;
  onChoose: (experiment: string) => void;
}): JSX.Element | null {
  const panel = usePanel();
  const state = useApi<ExperimentList>(route({ ...panel, experiment: '' }, 'experiments'));
  const names = (state.data?.experiments ?? []).map(e => e.name);
  const own = props.store.experiment;
  const shown = props.chosen || own;
  return (
    <label className="jp-MlopsField jp-MlopsExperiment">
      Showing experiment{' '}
      <select
        data-testid="mlops-experiment-select"
        value={shown}
        onChange={e => props.onChoose(e.target.value === own ? '' : e.target.value)}
      >
        {[own, ...names.filter(name => name !== own)].map(name => (
          <option key={name} value={name}>
            {name}
            {name === own ? ' (the notebook’s)' : ''}
          </option>
        ))}
      </select>
    </label>
  );
}
