import { Dialog, showDialog } from '@jupyterlab/apputils';
import React, { useEffect, useState } from 'react';

import {
  Detail,
  KeyValues,
  LoadState,
  Placeholder,
  Section,
  formatTime,
  formatValue
} from '../components';
import {
  ICurve,
  IRunDetail,
  IRunSummary,
  getCompare,
  getRun,
  getRunArtifact,
  getRuns
} from '../api';
import { useApi, usePanel } from '../context';

const PAGE_SIZE = 50;
/** What a failed %%track records (jupyter_mlops.tracking.run). */
const ERROR_TAG = 'mlops.error';
const ERROR_ARTIFACT = 'error.txt';
const SHOWN_METRICS = 3;
const SHOWN_PARAMS = 2;
const COLOURS = [
  'var(--jp-brand-color1)',
  'var(--jp-warn-color1)',
  'var(--jp-success-color1)',
  'var(--jp-error-color1)',
  'var(--jp-accent-color1)',
  'var(--jp-ui-font-color2)'
];

/** Server-side sort keys (the `%runs --sort` syntax); a leading '-' is descending. */
type Sort = { key: string; descending: boolean };

export function RunsSection(): JSX.Element {
  const panel = usePanel();
  const [sort, setSort] = useState<Sort>({
    key: 'start_time',
    descending: true
  });
  const [tokens, setTokens] = useState<string[]>([]); // page tokens of the pages after the first
  const [selected, setSelected] = useState<string[]>([]);
  const [open, setOpen] = useState<string | null>(null);
  const [comparing, setComparing] = useState(false);
  const sortParam = `${sort.descending ? '-' : ''}${sort.key}`;
  const first = useApi(
    scope => getRuns(scope, { limit: PAGE_SIZE, sort: sortParam }),
    sortParam
  );
  const [more, setMore] = useState<IRunSummary[]>([]);

  useEffect(() => {
    setTokens([]);
    setMore([]);
  }, [
    sortParam,
    panel.notebookPath,
    panel.kernelId,
    panel.experiment,
    panel.refreshKey
  ]);

  if (open !== null) {
    return (
      <Section title="Runs" testId="mlops-runs">
        <RunDetailView runId={open} onClose={() => setOpen(null)} />
      </Section>
    );
  }
  if (comparing) {
    return (
      <Section title="Runs" testId="mlops-runs">
        <CompareView runIds={selected} onClose={() => setComparing(false)} />
      </Section>
    );
  }

  const page = first.data;
  const runs = page ? [...page.runs, ...more] : [];
  const nextToken =
    tokens.length > 0 ? tokens[tokens.length - 1] : page?.next_page_token;
  const metricKeys = (page?.metric_keys ?? []).filter(
    k => !k.startsWith('drift.')
  );
  const shownMetrics = metricKeys.slice(0, SHOWN_METRICS);
  const shownParams = (page?.param_keys ?? []).slice(0, SHOWN_PARAMS);

  const loadMore = () => {
    if (!nextToken) {
      return;
    }
    getRuns(panel, {
      limit: PAGE_SIZE,
      sort: sortParam,
      page_token: nextToken
    }).then(next => {
      setMore(previous => [...previous, ...next.runs]);
      setTokens(previous => [...previous, next.next_page_token ?? '']);
    });
  };
  const header = (label: string, key: string) => (
    <th
      className="jp-MlopsSortable"
      title={`Sort by ${key}`}
      onClick={() =>
        setSort({ key, descending: sort.key === key ? !sort.descending : true })
      }
    >
      {label}
      {sort.key === key ? (sort.descending ? ' ▾' : ' ▴') : ''}
    </th>
  );
  const toggle = (runId: string) =>
    setSelected(previous =>
      previous.includes(runId)
        ? previous.filter(id => id !== runId)
        : [...previous, runId]
    );

  return (
    <Section title="Runs" testId="mlops-runs">
      <LoadState state={first} />
      {page && runs.length === 0 && (
        <Placeholder>
          No runs in experiment <code>{page.experiment}</code> yet — run a{' '}
          <code>%%track</code> cell.
        </Placeholder>
      )}
      {runs.length > 0 && (
        <>
          <div className="jp-MlopsToolbar">
            <span className="jp-MlopsMuted">
              {page?.experiment} · {runs.length}
              {nextToken ? '+' : ''} runs
            </span>
            <button
              className="jp-mod-styled jp-mod-accept jp-MlopsButton"
              data-testid="mlops-compare-button"
              disabled={selected.length < 2}
              title="Select two or more runs to compare their metric curves"
              onClick={() => setComparing(true)}
            >
              Compare {selected.length > 1 ? selected.length : ''}
            </button>
          </div>
          <div className="jp-MlopsScroll">
            <table className="jp-MlopsTable">
              <thead>
                <tr>
                  <th />
                  {header('name', 'name')}
                  {header('status', 'status')}
                  {header('start', 'start_time')}
                  {shownMetrics.map(k => (
                    <React.Fragment key={k}>
                      {header(k, `metrics.${k}`)}
                    </React.Fragment>
                  ))}
                  {shownParams.map(k => (
                    <React.Fragment key={k}>
                      {header(k, `params.${k}`)}
                    </React.Fragment>
                  ))}
                </tr>
              </thead>
              <tbody>
                {runs.map(run => (
                  <tr
                    key={run.run_id}
                    data-testid="mlops-run-row"
                    data-run-id={run.run_id}
                  >
                    <td>
                      <input
                        type="checkbox"
                        aria-label={`select ${run.name}`}
                        checked={selected.includes(run.run_id)}
                        onChange={() => toggle(run.run_id)}
                      />
                    </td>
                    <td>
                      <button
                        className="jp-MlopsLink"
                        title={`Details of ${run.name} (${run.run_id})`}
                        onClick={() => setOpen(run.run_id)}
                      >
                        {run.name}
                      </button>
                    </td>
                    <td
                      className={`jp-MlopsStatus jp-mod-${run.status.toLowerCase()}`}
                    >
                      {run.status}
                    </td>
                    <td>{formatTime(run.start_time)}</td>
                    {shownMetrics.map(k => (
                      <td key={k}>{formatValue(run.metrics[k])}</td>
                    ))}
                    {shownParams.map(k => (
                      <td key={k}>{formatValue(run.params[k])}</td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {nextToken && (
            <button className="jp-MlopsLink" onClick={loadMore}>
              Load more runs
            </button>
          )}
        </>
      )}
    </Section>
  );
}

function RunDetailView(props: {
  runId: string;
  onClose: () => void;
}): JSX.Element {
  const panel = usePanel();
  const state = useApi(scope => getRun(scope, props.runId), props.runId);
  const [viewing, setViewing] = useState<string | null>(null);
  const detail = state.data;
  return (
    <Detail
      title={detail ? `${detail.run.name} (${detail.run.status})` : props.runId}
      testId="mlops-run-detail"
      onClose={props.onClose}
    >
      <LoadState state={state} />
      {detail && (
        <>
          <p className="jp-MlopsMuted" title={detail.run.run_id}>
            {detail.experiment} · {detail.run.run_id.slice(0, 12)} ·{' '}
            {formatTime(detail.run.start_time)}
          </p>
          {detail.notebook && detail.cell_id && (
            <button
              className="jp-MlopsLink"
              onClick={() => {
                if (!panel.goToCell(detail.notebook!, detail.cell_id!)) {
                  void showDialog({
                    title: 'Notebook not open',
                    body: `Open ${detail.notebook} to go to the cell of ${detail.run.name}.`,
                    buttons: [Dialog.okButton()]
                  });
                }
              }}
            >
              Go to cell
            </button>
          )}
          {detail.run.status === 'FAILED' && (
            <RunError detail={detail} onOpen={setViewing} />
          )}
          <h4>Params</h4>
          <KeyValues values={detail.run.params} />
          <h4>Metrics</h4>
          <KeyValues values={detail.run.metrics} />
          {Object.keys(detail.curves).some(
            k => detail.curves[k].steps.length > 1
          ) && (
            <Charts
              runs={[{ run_id: detail.run.run_id, label: detail.run.name }]}
              curves={Object.fromEntries(
                Object.entries(detail.curves).map(([k, c]) => [
                  k,
                  { [detail.run.run_id]: c }
                ])
              )}
            />
          )}
          <h4>Inputs</h4>
          {detail.inputs.length > 0 ? (
            <ul className="jp-MlopsList">
              {detail.inputs.map(ref => (
                <li key={ref}>
                  <code>{ref}</code>
                </li>
              ))}
            </ul>
          ) : (
            <Placeholder>No snapshots read or written.</Placeholder>
          )}
          <h4>Artifacts</h4>
          {detail.artifacts.length > 0 ? (
            <ul className="jp-MlopsList">
              {detail.artifacts.map(path => (
                <li key={path}>
                  <button
                    className="jp-MlopsLink"
                    data-testid="mlops-artifact"
                    title={`Show ${path}`}
                    onClick={() => setViewing(path)}
                  >
                    <code>{path}</code>
                  </button>
                </li>
              ))}
            </ul>
          ) : (
            <Placeholder>No artifacts.</Placeholder>
          )}
          {viewing !== null && (
            <ArtifactView
              runId={detail.run.run_id}
              path={viewing}
              onClose={() => setViewing(null)}
            />
          )}
          {detail.cell_source && (
            <>
              <h4>Cell</h4>
              <pre className="jp-MlopsCode">{detail.cell_source}</pre>
            </>
          )}
        </>
      )}
    </Detail>
  );
}

/** A failed run's error (the recorded one-liner), with the full text one click away. */
function RunError(props: {
  detail: IRunDetail;
  onOpen: (path: string) => void;
}): JSX.Element {
  const { detail } = props;
  const summary =
    detail.tags[ERROR_TAG] ?? 'The run failed without a recorded error.';
  return (
    <div
      className="jp-MlopsRunError"
      data-testid="mlops-run-error"
      role="alert"
    >
      <pre className="jp-MlopsCode">{summary}</pre>
      {detail.artifacts.includes(ERROR_ARTIFACT) && (
        <button
          className="jp-MlopsLink"
          onClick={() => props.onOpen(ERROR_ARTIFACT)}
        >
          Show the full error
        </button>
      )}
    </div>
  );
}

/** One artifact of a run, as text (or why it is not shown as text). */
function ArtifactView(props: {
  runId: string;
  path: string;
  onClose: () => void;
}): JSX.Element {
  const state = useApi(
    scope => getRunArtifact(scope, props.runId, props.path),
    `${props.runId}/${props.path}`
  );
  const artifact = state.data;
  return (
    <div
      className="jp-MlopsArtifact"
      data-testid="mlops-artifact-view"
      data-path={props.path}
    >
      <div className="jp-MlopsToolbar">
        <code title={props.path}>{props.path}</code>
        <button className="jp-MlopsLink" onClick={props.onClose}>
          close
        </button>
      </div>
      <LoadState state={state} />
      {artifact?.text !== null && artifact?.text !== undefined && (
        <pre className="jp-MlopsCode">{artifact.text}</pre>
      )}
      {artifact?.note && <Placeholder>{artifact.note}</Placeholder>}
    </div>
  );
}

/** `%compare` of the selected runs, from the server: every column and curve is one run. */
function CompareView(props: {
  runIds: string[];
  onClose: () => void;
}): JSX.Element {
  const state = useApi(
    scope => getCompare(scope, props.runIds),
    props.runIds.join(',')
  );
  const found = state.data;
  const curves = Object.fromEntries(
    Object.entries(found?.curves ?? {}).filter(
      ([metric]) => !metric.startsWith('drift.')
    )
  );
  const params = Object.keys(found?.params ?? {}).sort();
  return (
    <Detail
      title={`Compare ${props.runIds.length} runs`}
      testId="mlops-compare"
      onClose={props.onClose}
    >
      <LoadState state={state} />
      {found && (
        <>
          {params.length > 0 && (
            <div className="jp-MlopsScroll">
              <table
                className="jp-MlopsTable"
                data-testid="mlops-compare-params"
              >
                <thead>
                  <tr>
                    <th>param</th>
                    {found.runs.map(run => (
                      <th
                        key={run.run_id}
                        data-run-id={run.run_id}
                        title={run.run_id}
                      >
                        {run.label}
                      </th>
                    ))}
                  </tr>
                </thead>
                <tbody>
                  {params.map(p => (
                    <tr
                      key={p}
                      className={found.param_differs[p] ? 'jp-mod-differs' : ''}
                    >
                      <td>{p}</td>
                      {found.runs.map(run => (
                        <td key={run.run_id} data-run-id={run.run_id}>
                          {formatValue(found.params[p][run.run_id])}
                        </td>
                      ))}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          {Object.keys(curves).length > 0 ? (
            <Charts runs={found.runs} curves={curves} />
          ) : (
            <Placeholder>These runs logged no metrics.</Placeholder>
          )}
        </>
      )}
    </Detail>
  );
}

/** One small line chart per metric, a line per run, drawn as inline SVG. */
function Charts(props: {
  /** The lines, in order: a run's id and its label. */
  runs: { run_id: string; label: string }[];
  /** metric -> run id -> curve. */
  curves: Record<string, Record<string, ICurve>>;
}): JSX.Element {
  return (
    <div className="jp-MlopsCharts">
      <div className="jp-MlopsLegend">
        {props.runs.map(({ run_id, label }, i) => (
          <span key={run_id} title={run_id}>
            <span
              className="jp-MlopsSwatch"
              style={{ background: COLOURS[i % COLOURS.length] }}
            />
            {label}
          </span>
        ))}
      </div>
      {Object.entries(props.curves).map(([metric, perRun]) => (
        <LineChart
          key={metric}
          metric={metric}
          lines={props.runs
            .map(({ run_id, label }, i) => ({
              runId: run_id,
              label,
              colour: COLOURS[i % COLOURS.length],
              curve: perRun[run_id]
            }))
            .filter(line => line.curve !== undefined)}
        />
      ))}
    </div>
  );
}

const WIDTH = 260;
const HEIGHT = 110;
const PAD = { left: 36, right: 8, top: 8, bottom: 18 };

function LineChart(props: {
  metric: string;
  lines: { runId: string; label: string; colour: string; curve: ICurve }[];
}): JSX.Element {
  const points = props.lines.flatMap(line =>
    line.curve.steps
      .map((step, i) => [step, line.curve.values[i]] as const)
      .filter((p): p is readonly [number, number] => p[1] !== null)
  );
  const xs = points.map(p => p[0]);
  const ys = points.map(p => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x: number) =>
    PAD.left + ((x - x0) / (x1 - x0 || 1)) * (WIDTH - PAD.left - PAD.right);
  const sy = (y: number) =>
    HEIGHT -
    PAD.bottom -
    ((y - y0) / (y1 - y0 || 1)) * (HEIGHT - PAD.top - PAD.bottom);
  return (
    <figure
      className="jp-MlopsChart"
      data-testid="mlops-chart"
      data-metric={props.metric}
    >
      <figcaption>{props.metric}</figcaption>
      <svg
        viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
        width="100%"
        role="img"
        aria-label={props.metric}
      >
        <line
          className="jp-MlopsChart-axis"
          x1={PAD.left}
          y1={HEIGHT - PAD.bottom}
          x2={WIDTH - PAD.right}
          y2={HEIGHT - PAD.bottom}
        />
        <line
          className="jp-MlopsChart-axis"
          x1={PAD.left}
          y1={PAD.top}
          x2={PAD.left}
          y2={HEIGHT - PAD.bottom}
        />
        <text
          className="jp-MlopsChart-tick"
          x={PAD.left - 3}
          y={PAD.top + 8}
          textAnchor="end"
        >
          {formatValue(y1)}
        </text>
        <text
          className="jp-MlopsChart-tick"
          x={PAD.left - 3}
          y={HEIGHT - PAD.bottom}
          textAnchor="end"
        >
          {formatValue(y0)}
        </text>
        <text className="jp-MlopsChart-tick" x={PAD.left} y={HEIGHT - 4}>
          {x0}
        </text>
        <text
          className="jp-MlopsChart-tick"
          x={WIDTH - PAD.right}
          y={HEIGHT - 4}
          textAnchor="end"
        >
          {x1}
        </text>
        {props.lines.map(line => {
          const path = line.curve.steps
            .map((step, i) => [step, line.curve.values[i]] as const)
            .filter((p): p is readonly [number, number] => p[1] !== null)
            .map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`)
            .join(' ');
          return (
            <polyline
              key={line.runId}
              data-run={line.label}
              data-run-id={line.runId}
              points={path}
              fill="none"
              stroke={line.colour}
              strokeWidth={1.5}
            >
              <title>{line.label}</title>
            </polyline>
          );
        })}
      </svg>
    </figure>
  );
}
