/**
 * The server extension's REST API, one typed function per route.
 *
 * Every section calls these functions and nothing else. The response interfaces mirror the
 * payload dataclasses of `jupyter_mlops/server/models.py` (and `server/browse.py`) one for one:
 * `IRunSummary` is `RunSummary`, same fields, `| null` where the server's field may be None.
 * `tests/test_panel_api_types.py` checks that they stay twins.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

const NAMESPACE = 'jupyter-mlops';

/** Where a request goes: the server, and the notebook, kernel and experiment it is about. */
export interface IScope {
  serverSettings: ServerConnection.ISettings;
  /** Server-relative path of the followed notebook ('' for the server root). */
  notebookPath: string;
  /** Id of the followed notebook's kernel ('' when none): the server reads what it reported. */
  kernelId: string;
  /** The chosen experiment; '' is the kernel's (or the folder's) own. */
  experiment: string;
}

type Params = Record<string, string | number | string[] | undefined>;

/**
 * Call one route under `<base_url>/jupyter-mlops/api/` for the scope's notebook.
 *
 * @throws ServerConnection.ResponseError carrying the server's `message` on a non-OK answer
 */
async function request<T>(
  scope: IScope,
  endPoint: string,
  params: Params = {},
  init: RequestInit = {}
): Promise<T> {
  const query = new URLSearchParams({ path: scope.notebookPath });
  const all: Params = {
    kernel: scope.kernelId,
    experiment: scope.experiment,
    ...params
  };
  for (const [key, value] of Object.entries(all)) {
    if (Array.isArray(value)) {
      value.forEach(item => query.append(key, item));
    } else if (value !== undefined && value !== '') {
      query.set(key, String(value));
    }
  }
  const settings = scope.serverSettings;
  const url =
    URLExt.join(settings.baseUrl, NAMESPACE, 'api', endPoint) +
    `?${query.toString()}`;
  const response = await ServerConnection.makeRequest(url, init, settings);
  const body = await response.text();
  const data = body.length > 0 ? parseJSON(body) : null;
  if (!response.ok) {
    const message =
      data !== null && typeof data === 'object' && 'message' in data
        ? String((data as { message: unknown }).message)
        : `${response.status} ${response.statusText}`;
    throw new ServerConnection.ResponseError(response, message);
  }
  return data as T;
}

function parseJSON(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    // Not JSON (e.g. a proxy's HTML error page): keep the raw text.
    return body;
  }
}

const part = encodeURIComponent;

// --- store ----------------------------------------------------------------------------------

/** `GET store`: where the store of the notebook's folder lives, as the server resolved it. */
export interface IStoreInfo {
  home: string;
  /** False until the first snapshot or run creates the folder. */
  home_exists: boolean;
  tracking_uri: string;
  snapshot_store: string;
  experiment: string;
  /** The notebook the answer was resolved for, or null when none was given. */
  notebook: string | null;
  /** Where each setting came from (e.g. "default", "env", "pyproject", "kernel"). */
  sources: Record<string, string>;
  version: string;
}

/** The store of the scope's notebook (its own experiment, whatever is chosen). */
export function getStore(scope: IScope): Promise<IStoreInfo> {
  return request(scope, 'store', { experiment: undefined });
}

export interface IExperimentInfo {
  name: string;
  last_update_time: number | null;
}

/** `GET experiments`: the shown experiment, then the store's, most recently updated first. */
export interface IExperimentList {
  current: string;
  experiments: IExperimentInfo[];
}

export function getExperiments(scope: IScope): Promise<IExperimentList> {
  return request(scope, 'experiments', { experiment: undefined });
}

// --- runs -----------------------------------------------------------------------------------

/** One row of `GET runs`. Times are ms since the epoch. */
export interface IRunSummary {
  run_id: string;
  name: string;
  status: string;
  start_time: number | null;
  end_time: number | null;
  params: Record<string, string>;
  metrics: Record<string, number | null>;
}

export interface IRunsPage {
  experiment: string;
  runs: IRunSummary[];
  next_page_token: string | null;
  metric_keys: string[];
  param_keys: string[];
}

/** Options of `GET runs` (the `%runs` query). */
export interface IRunsQuery {
  limit?: number;
  /** A `%runs --sort` key; a leading '-' is descending. */
  sort?: string;
  page_token?: string;
  filter?: string;
}

export function getRuns(
  scope: IScope,
  query: IRunsQuery = {}
): Promise<IRunsPage> {
  return request(scope, 'runs', { ...query });
}

export interface ICurve {
  steps: number[];
  values: (number | null)[];
}

export interface IRunDetail {
  run: IRunSummary;
  experiment: string;
  tags: Record<string, string>;
  inputs: string[];
  artifacts: string[];
  cell_source: string | null;
  notebook: string | null;
  cell_id: string | null;
  curves: Record<string, ICurve>;
}

export function getRun(scope: IScope, runId: string): Promise<IRunDetail> {
  return request(scope, `runs/${part(runId)}`);
}

/** `GET runs/<id>/artifact?file=<path>`: one artifact's text, or why it is not shown. */
export interface IArtifactText {
  run_id: string;
  path: string;
  size: number | null;
  text: string | null;
  note: string | null;
}

export function getRunArtifact(
  scope: IScope,
  runId: string,
  file: string
): Promise<IArtifactText> {
  return request(scope, `runs/${part(runId)}/artifact`, { file });
}

export interface ICompareRun {
  run_id: string;
  /** Its name, with an id prefix where names repeat (as `%compare` labels it). */
  label: string;
}

/** `GET compare?run=ID&run=ID`: `%compare`'s Comparison, every map keyed by run id. */
export interface IComparePayload {
  /** In the order asked. */
  runs: ICompareRun[];
  /** param -> run id -> value (null: not logged). */
  params: Record<string, Record<string, unknown>>;
  /** metric -> run id -> last value. */
  metrics: Record<string, Record<string, number | null>>;
  param_differs: Record<string, boolean>;
  metric_differs: Record<string, boolean>;
  /** metric -> run id -> curve. */
  curves: Record<string, Record<string, ICurve>>;
}

export function getCompare(
  scope: IScope,
  runIds: string[]
): Promise<IComparePayload> {
  return request(scope, 'compare', { run: runIds });
}

// --- snapshots ------------------------------------------------------------------------------

export interface ISnapshotVersion {
  version: number;
  ref: string;
  id: string;
  kind: string;
  rows: number | null;
  columns: number | null;
  bytes: number;
  created: string | null;
  message: string;
  notebook: string;
  /** What is wrong with a damaged version file or manifest; null when it reads. */
  error: string | null;
}

export interface ISnapshotName {
  name: string;
  versions: ISnapshotVersion[];
}

export interface ISnapshotList {
  names: ISnapshotName[];
}

export function getSnapshots(scope: IScope): Promise<ISnapshotList> {
  return request(scope, 'snapshots');
}

export interface IColumnInfo {
  name: string;
  type: string;
  index: boolean;
  bytes: number;
  stats: Record<string, unknown>;
}

/** One column's change in a diff (a plain dict on the server). */
export interface IColumnChange {
  column: string;
  change: string;
  detail: string;
}

/** One statistic that moved in a diff (a plain dict on the server). */
export interface IStatShift {
  column: string;
  stat: string;
  before: unknown;
  after: unknown;
}

export interface IDiffPayload {
  a: string;
  b: string;
  identical: boolean;
  rows: string | null;
  changes: IColumnChange[];
  stat_shifts: IStatShift[];
  unchanged: number;
  text: string;
}

export interface ISnapshotDetail {
  name: string;
  versions: ISnapshotVersion[];
  version: number;
  schema: IColumnInfo[];
  diff: IDiffPayload | null;
}

/** One snapshot name: a version's schema and stats, and optionally a diff against `diff`. */
export function getSnapshot(
  scope: IScope,
  name: string,
  options: { version?: number; diff?: number } = {}
): Promise<ISnapshotDetail> {
  return request(scope, `snapshots/${part(name)}`, { ...options });
}

// --- models ---------------------------------------------------------------------------------

export interface IModelSummary {
  name: string;
  latest_version: number | null;
  versions: number;
  aliases: Record<string, number>;
  /** Why this model could not be read; null when it reads. */
  error: string | null;
}

export interface IModelList {
  models: IModelSummary[];
}

export function getModels(scope: IScope): Promise<IModelList> {
  return request(scope, 'models');
}

/** One check of a gate (a plain dict on the server: GateResult.record()). */
export interface IGateCheck {
  name: string;
  value: number | string | null;
  threshold: string;
  passed: boolean;
  detail: string;
}

/** A recorded gate decision (a plain dict on the server: GateResult.record()). */
export interface IGateRecord {
  decision: string;
  passed: boolean;
  alias: string | null;
  moved: boolean;
  previous: number | null;
  reason: string | null;
  user: string;
  at: string;
  checks: IGateCheck[];
}

export interface IModelVersionInfo {
  version: number;
  run_id: string | null;
  run_name: string | null;
  created: number | null;
  aliases: string[];
  snapshots: string[];
  metrics: Record<string, number | null>;
  gates: IGateRecord[];
}

export interface IModelDetail {
  name: string;
  aliases: Record<string, number>;
  versions: IModelVersionInfo[];
}

export function getModel(scope: IScope, name: string): Promise<IModelDetail> {
  return request(scope, `models/${part(name)}`);
}

/** Body of `POST models/<name>/promote`: the options of `%promote`. */
export interface IPromoteRequest {
  alias: string;
  version?: number | null;
  require?: string[];
  vs?: string | null;
  min_delta?: number | null;
  metric?: string | null;
  reference?: string | null;
  current?: string | null;
  max_drift_share?: number | null;
  dry_run?: boolean;
  reason?: string | null;
}

export interface IPromoteAnswer {
  passed: boolean;
  moved: boolean;
  decision: string;
  headline: string;
  model: string;
  version: number | null;
  alias: string | null;
  previous: number | null;
  checks: IGateCheck[];
  reports: string[];
}

/** Run the gate of `%promote`; a failed gate is an answer, not an error. */
export function promoteModel(
  scope: IScope,
  name: string,
  body: IPromoteRequest
): Promise<IPromoteAnswer> {
  return request(
    scope,
    `models/${part(name)}/promote`,
    {},
    {
      method: 'POST',
      body: JSON.stringify(body)
    }
  );
}

// --- drift ----------------------------------------------------------------------------------

export interface IDriftReportInfo {
  run_id: string;
  run_name: string;
  report: string;
  reference: string | null;
  current: string | null;
  drifted: boolean | null;
  share_drifted: number | null;
  start_time: number | null;
  /** Why this report's summary could not be read; null when it reads. */
  error: string | null;
}

export interface IDriftList {
  experiment: string;
  reports: IDriftReportInfo[];
}

export function getDrift(scope: IScope): Promise<IDriftList> {
  return request(scope, 'drift');
}

export interface IDriftReport {
  run_id: string;
  report: string;
  html: string;
}

export function getDriftReport(
  scope: IScope,
  runId: string,
  report: string
): Promise<IDriftReport> {
  return request(scope, `drift/${part(runId)}/${part(report)}`);
}

// --- lineage --------------------------------------------------------------------------------

/** `GET lineage?ref=REF`: `%lineage`'s graph as the server sends it (not typed there yet). */
export function getLineage(
  scope: IScope,
  ref: string
): Promise<Record<string, unknown>> {
  return request(scope, 'lineage', { ref });
}

// --- deployments ----------------------------------------------------------------------------

/** One endpoint as `%serve status` shows it; latencies in milliseconds. */
export interface IDeploymentInfo {
  name: string;
  model: string;
  alias: string;
  /** The model version answering now; null until a worker reported. */
  version: string | null;
  url: string;
  pid: number;
  detached: boolean;
  /** Seconds since the epoch. */
  started: number;
  requests: number;
  errors: number;
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
  alive: boolean;
  workers: number;
}

export interface IDeploymentList {
  deployments: IDeploymentInfo[];
}

/** The store's endpoints with their live counters. */
export function getDeployments(scope: IScope): Promise<IDeploymentList> {
  return request(scope, 'deployments', { experiment: undefined });
}

/** Stop an endpoint as `%serve stop NAME` does; answers the endpoints left. */
export function stopDeployment(
  scope: IScope,
  name: string
): Promise<IDeploymentList> {
  return request(
    scope,
    `deployments/${part(name)}/stop`,
    { experiment: undefined },
    { method: 'POST' }
  );
}

// --- monitoring -----------------------------------------------------------------------------

/**
 * The fields of `GET monitor?model=NAME@ALIAS` (the latest `%monitor` result, which the server
 * sends as `MonitorResult.to_dict()`) that the Deployments section shows.
 */
export interface IMonitorVerdict {
  model: string;
  version: number | null;
  passed: boolean;
  headline: string;
}

/** The latest `%monitor` verdict of an endpoint; rejects with a 404 when none was recorded. */
export function getMonitor(
  scope: IScope,
  model: string
): Promise<IMonitorVerdict> {
  return request(scope, 'monitor', { model, experiment: undefined });
}
