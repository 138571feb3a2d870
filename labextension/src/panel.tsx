import { ServerConnection } from '@jupyterlab/services';
import {
  ReactWidget,
  SidePanel,
  ToolbarButton,
  refreshIcon
} from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Panel, Widget } from '@lumino/widgets';
import React, { useEffect, useMemo, useState } from 'react';

import { IStoreInfo, getExperiments, getStore } from './api';
import { IPanelContext, PanelContext, useApi } from './context';
import { DeploymentsSection } from './sections/deployments';
import { DriftSection } from './sections/drift';
import { ModelsSection } from './sections/models';
import { RunsSection } from './sections/runs';
import { SnapshotsSection } from './sections/snapshots';

/** What the panel asks of the application shell. */
export interface IShellActions {
  openReport: IPanelContext['openReport'];
  goToCell: IPanelContext['goToCell'];
}

/**
 * The left-sidebar panel: JupyterLab's side panel (title header, toolbar with the refresh
 * button) holding the store of the current notebook's folder and what it holds.
 */
export class MlopsPanel extends SidePanel {
  constructor(
    private readonly serverSettings: ServerConnection.ISettings,
    private readonly actions: IShellActions
  ) {
    super({ content: new Panel() });
    this.addClass('jp-MlopsPanel');
    const heading = document.createElement('h2');
    heading.className = 'jp-MlopsPanel-title';
    heading.textContent = 'MLOps';
    this.header.addWidget(new Widget({ node: heading }));
    const refresh = new ToolbarButton({
      icon: refreshIcon,
      tooltip: 'Refresh',
      onClick: () => this.refresh()
    });
    refresh.node.dataset.testid = 'mlops-refresh';
    this.toolbar.addItem('refresh', refresh);
    this._view = new PanelViewWidget(this);
    this.addWidget(this._view);
  }

  /** Reload every section (after a cell ran, or on the refresh button); deferred while hidden. */
  refresh(): void {
    if (!this.isVisible) {
      this._stale = true;
      return;
    }
    this._stale = false;
    this._refreshKey += 1;
    this._view.update();
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
      this._view.update();
    }
  }

  /** Id of the followed notebook's kernel; '' while it has none. */
  get kernelId(): string {
    return this._kernelId;
  }

  set kernelId(id: string) {
    if (id !== this._kernelId) {
      this._kernelId = id;
      this._view.update();
    }
  }

  /** The view's props: what the panel follows now. */
  viewProps(): IPanelViewProps {
    return {
      serverSettings: this.serverSettings,
      notebookPath: this._notebookPath,
      kernelId: this._kernelId,
      refreshKey: this._refreshKey,
      actions: this.actions
    };
  }

  private _view: PanelViewWidget;
  private _notebookPath = '';
  private _kernelId = '';
  private _refreshKey = 0;
  private _stale = false;
}

/** The panel's React content, rendered again whenever the panel's state changes. */
class PanelViewWidget extends ReactWidget {
  constructor(private readonly panel: MlopsPanel) {
    super();
    this.addClass('jp-MlopsPanel-view');
  }

  protected render(): JSX.Element {
    return <PanelView {...this.panel.viewProps()} />;
  }
}

interface IPanelViewProps {
  serverSettings: ServerConnection.ISettings;
  notebookPath: string;
  kernelId: string;
  refreshKey: number;
  actions: IShellActions;
}

type StoreState =
  | { status: 'loading' }
  | { status: 'error'; message: string }
  | { status: 'ready'; store: IStoreInfo };

function PanelView(props: IPanelViewProps): JSX.Element {
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
      previous.status === 'ready' &&
      previous.store.notebook === (props.notebookPath || null)
        ? previous
        : { status: 'loading' }
    );
    getStore(context).then(
      store => !stale && setState({ status: 'ready', store }),
      (error: Error) =>
        !stale && setState({ status: 'error', message: error.message })
    );
    return () => {
      stale = true;
    };
  }, [
    props.notebookPath,
    props.kernelId,
    props.serverSettings,
    props.refreshKey
  ]);

  return (
    <div className="jp-MlopsPanel-content" data-testid="mlops-panel">
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
            <DeploymentsSection />
          </React.Fragment>
        </PanelContext.Provider>
      )}
    </div>
  );
}

/** Where the shown store comes from, in words: the live kernel, or the notebook's folder. */
function storeOrigin(store: IStoreInfo): string {
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
        <dd
          title={`${store.experiment} (from ${store.sources.experiment ?? 'default'})`}
        >
          {store.experiment}
        </dd>
      </dl>
    </>
  );
}

/** Choose which experiment the runs and drift sections show; '' is the kernel's own. */
function ExperimentPicker(props: {
  store: IStoreInfo;
  chosen: string;
  onChoose: (experiment: string) => void;
}): JSX.Element | null {
  const state = useApi(getExperiments);
  const names = (state.data?.experiments ?? []).map(e => e.name);
  const own = props.store.experiment;
  const shown = props.chosen || own;
  return (
    <label className="jp-MlopsField jp-MlopsExperiment">
      Showing experiment{' '}
      <select
        data-testid="mlops-experiment-select"
        value={shown}
        onChange={e =>
          props.onChoose(e.target.value === own ? '' : e.target.value)
        }
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
