import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { IThemeManager, MainAreaWidget } from '@jupyterlab/apputils';
import {
  INotebookTracker,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import { IFrame, LabIcon } from '@jupyterlab/ui-components';

// The side panel is created (and shown in the sidebar) as the plugin activates.
// eslint-disable-next-line jupyter/prefer-lazy-imports
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
  optional: [ILayoutRestorer, INotebookTracker, IThemeManager],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    notebooks: INotebookTracker | null,
    themes: IThemeManager | null
  ) => {
    const panel = new MlopsPanel(
      app.serviceManager.serverSettings,
      shellActions(app, notebooks, themes)
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
      describedBy: { args: { type: 'object', properties: {} } },
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

/** The theme's colours and fonts a report uses (through `var(--jp-…, fallback)`). */
const THEME_VARIABLES = [
  '--jp-layout-color0',
  '--jp-layout-color1',
  '--jp-layout-color2',
  '--jp-layout-color3',
  '--jp-ui-font-color0',
  '--jp-ui-font-color1',
  '--jp-ui-font-color2',
  '--jp-ui-font-color3',
  '--jp-content-font-color0',
  '--jp-content-font-color1',
  '--jp-border-color0',
  '--jp-border-color1',
  '--jp-border-color2',
  '--jp-brand-color1',
  '--jp-error-color1',
  '--jp-warn-color1',
  '--jp-success-color1',
  '--jp-content-link-color',
  '--jp-ui-font-family',
  '--jp-ui-font-size1',
  '--jp-code-font-family'
];

/**
 * A report's HTML in the current JupyterLab theme. The report is a separate document in an
 * iframe, so the theme's variables are copied into it; its own `var(--jp-…)` colours follow.
 */
export function themedReport(html: string): string {
  const computed = window.getComputedStyle(document.body);
  const values = THEME_VARIABLES.map(name => {
    const value = computed.getPropertyValue(name).trim();
    return value ? `${name}:${value};` : '';
  }).join('');
  const dark = document.body.dataset.jpThemeLight === 'false';
  const style =
    `<style data-jp-mlops-theme>:root{${values}color-scheme:${dark ? 'dark' : 'light'}}` +
    'html,body{background:var(--jp-layout-color0,#fff);color:var(--jp-ui-font-color1,#000)}' +
    'a{color:var(--jp-content-link-color,#1976d2)}</style>';
  return html.includes('<head>')
    ? html.replace('<head>', `<head>${style}`)
    : style + html;
}

/** Open drift reports in main-area tabs; select a run's cell in its open notebook. */
function shellActions(
  app: JupyterFrontEnd,
  notebooks: INotebookTracker | null,
  themes: IThemeManager | null
): IShellActions {
  // Open reports are re-rendered when the theme changes, so they never stay light in dark.
  const reports = new Map<HTMLIFrameElement, string>();
  themes?.themeChanged.connect(() => {
    window.requestAnimationFrame(() => {
      reports.forEach((html, node) => (node.srcdoc = themedReport(html)));
    });
  });
  return {
    openReport: (title: string, html: string) => {
      // The report is static HTML (no script): an empty sandbox runs nothing, not even that.
      const frame = new IFrame({ sandbox: [], referrerPolicy: 'no-referrer' });
      const node = frame.node.querySelector('iframe')!;
      node.srcdoc = themedReport(html);
      reports.set(node, html);
      const widget = new MainAreaWidget({ content: frame });
      widget.addClass('jp-MlopsReport');
      widget.title.label = title;
      widget.title.icon = mlopsIcon;
      widget.title.closable = true;
      widget.disposed.connect(() => reports.delete(node));
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
      const index = panel.content.widgets.findIndex(
        cell => cell.model.id === cellId
      );
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

/** Point the panel at the active notebook and its kernel; keep it there across renames. */
function followCurrentNotebook(
  panel: MlopsPanel,
  notebooks: INotebookTracker
): void {
  let followed: NotebookPanel | null = null;
  const showFollowed = () => {
    panel.notebookPath = followed?.context.localPath ?? '';
    panel.kernelId = followed?.sessionContext.session?.kernel?.id ?? '';
  };
  const follow = () => {
    if (followed) {
      followed.context.pathChanged.disconnect(showFollowed);
      followed.sessionContext.kernelChanged.disconnect(showFollowed);
      followed.sessionContext.sessionChanged.disconnect(showFollowed);
    }
    followed = notebooks.currentWidget;
    if (followed) {
      followed.context.pathChanged.connect(showFollowed);
      followed.sessionContext.kernelChanged.connect(showFollowed);
      followed.sessionContext.sessionChanged.connect(showFollowed);
      void followed.sessionContext.ready.then(showFollowed);
    }
    showFollowed();
  };
  notebooks.currentChanged.connect(follow);
  follow();
}

export default plugin;
