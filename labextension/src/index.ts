import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { MainAreaWidget } from '@jupyterlab/apputils';
import {
  INotebookTracker,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { IShellActions, MlopsPanel } from './panel';

const PANEL_ID = 'jupyter-mlops-panel';
const OPEN_COMMAND = 'jupyter-mlops:open';
/** Cells often finish in bursts (Run All): refresh once they settle. */
const REFRESH_DELAY_MS = 400;

/** A flask, drawn in the theme's icon colour. */
export const mlopsIcon = new LabIcon({
  name: 'jupyter-mlops:flask',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" fill-rule="evenodd" ' +
    'd="M9 2h6v2h-1v5.2l5.6 9.3c.7 1.1-.1 2.5-1.4 2.5H5.8c-1.3 0-2.1-1.4-1.4-2.5L10 9.2V4H9V2z' +
    'M11.2 4v5.6l-2.8 4.6h7.2l-2.8-4.6V4h-1.6z"/>' +
    '</svg>'
});

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-mlops:plugin',
  description: 'A side panel showing the MLOps store of the current notebook.',
  autoStart: true,
  optional: [ILayoutRestorer, INotebookTracker],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    notebooks: INotebookTracker | null
  ) => {
    const panel = new MlopsPanel(
      app.serviceManager.serverSettings,
      shellActions(app, notebooks)
    );
    panel.id = PANEL_ID;
    panel.title.icon = mlopsIcon;
    panel.title.caption = 'MLOps';
    app.shell.add(panel, 'left', { rank: 900 });
    restorer?.add(panel, PANEL_ID);

    app.commands.addCommand(OPEN_COMMAND, {
      label: 'Open the MLOps Panel',
      caption: 'Show the MLOps side panel',
      icon: mlopsIcon,
      execute: () => app.shell.activateById(PANEL_ID)
    });

    if (notebooks) {
      followCurrentNotebook(panel, notebooks);
    }
    let pending: number | undefined;
    NotebookActions.executed.connect(() => {
      window.clearTimeout(pending);
      pending = window.setTimeout(() => panel.refresh(), REFRESH_DELAY_MS);
    });
  }
};

/** Open drift reports in main-area tabs; select a run's cell in its open notebook. */
function shellActions(
  app: JupyterFrontEnd,
  notebooks: INotebookTracker | null
): IShellActions {
  return {
    openReport: (title: string, html: string) => {
      const frame = new Widget({ node: document.createElement('iframe') });
      const node = frame.node as HTMLIFrameElement;
      // The report is self-contained HTML from our own store; scripts stay sandboxed.
      node.setAttribute('sandbox', 'allow-scripts');
      node.srcdoc = html;
      node.style.border = 'none';
      node.style.width = '100%';
      node.style.height = '100%';
      const widget = new MainAreaWidget({ content: frame });
      widget.addClass('jp-MlopsReport');
      widget.title.label = title;
      widget.title.icon = mlopsIcon;
      widget.title.closable = true;
      app.shell.add(widget, 'main');
      app.shell.activateById(widget.id);
    },
    goToCell: (notebook: string, cellId: string) => {
      const panel = notebooks?.find(
        candidate =>
          notebook === candidate.context.localPath ||
          notebook.endsWith(`/${candidate.context.localPath}`)
      );
      if (!panel) {
        return false;
      }
      const index = panel.content.widgets.findIndex(cell => cell.model.id === cellId);
      if (index < 0) {
        return false;
      }
      app.shell.activateById(panel.id);
      panel.content.activeCellIndex = index;
      void panel.content.scrollToItem(index);
      return true;
    }
  };
}

/** Point the panel at the active notebook, and keep it there across renames. */
function followCurrentNotebook(
  panel: MlopsPanel,
  notebooks: INotebookTracker
): void {
  let followed: NotebookPanel | null = null;
  const showFollowed = () => {
    panel.notebookPath = followed?.context.localPath ?? '';
  };
  const follow = () => {
    followed?.context.pathChanged.disconnect(showFollowed);
    followed = notebooks.currentWidget;
    followed?.context.pathChanged.connect(showFollowed);
    showFollowed();
  };
  notebooks.currentChanged.connect(follow);
  follow();
}

export default plugin;
