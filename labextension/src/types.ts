/**
 * Answer of `GET jupyter-mlops/api/store?path=...`: where the store of a
 * notebook's folder lives, as the server resolved it.
 */
export interface StoreInfo {
  home: string;
  /** False until the first snapshot or run creates the folder. */
  home_exists: boolean;
  tracking_uri: string;
  snapshot_store: string;
  experiment: string;
  /** The notebook the answer was resolved for, or null when none was given. */
  notebook: string | null;
  /** Where each setting came from (e.g. "default", "env", "pyproject"). */
  sources: Record<string, string>;
  version: string;
}

/** One row of `GET runs`. Times are ms since the epoch. */
export interface RunSummary {
  run_id: string;
  name: string;
  status: string;
  start_time: number | null;
  end_time: number | null;
  params: Record<string, string>;
  metrics: Record<string, number | null>;
}

export interface RunsPage {
  experiment: string;
  runs: RunSummary[];
  next_page_token: string | null;
  metric_keys: string[];
  param_keys: string[];
}

export interface Curve {
  steps: number[];
  values: (number | null)[];
}

export interface RunDetail {
  run: RunSummary;
  experiment: string;
  tags: Record<string, string>;
  inputs: string[];
  artifacts: string[];
  cell_source: string | null;
  notebook: string | null;
  cell_id: string | null;
  curves: Record<string, Curve>;
}

export interface SnapshotVersion {
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
}

export interface SnapshotList {
  names: { name: string; versions: SnapshotVersion[] }[];
}

export interface ColumnInfo {
  name: string;
  type: string;
  index: boolean;
  bytes: number;
  stats: Record<string, unknown>;
}

export interface SnapshotDiff {
  a: string;
  b: string;
  identical: boolean;
  rows: string | null;
  changes: { column: string; change: string; detail: string }[];
  stat_shifts: {
    column: string;
    stat: string;
    before: unknown;
    after: unknown;
  }[];
  unchanged: number;
  text: string;
}

export interface SnapshotDetail {
  name: string;
  versions: SnapshotVersion[];
  version: number;
  schema: ColumnInfo[];
  diff: SnapshotDiff | null;
}

export interface ModelSummary {
  name: string;
  latest_version: number | null;
  versions: number;
  aliases: Record<string, number>;
}

export interface GateCheck {
  name: string;
  value: number | string | null;
  threshold: string;
  passed: boolean;
  detail: string;
}

/** A recorded gate decision (GateResult.record() on the server). */
export interface GateRecord {
  decision: string;
  passed: boolean;
  alias: string | null;
  moved: boolean;
  previous: number | null;
  reason: string | null;
  user: string;
  at: string;
  checks: GateCheck[];
}

export interface ModelVersionInfo {
  version: number;
  run_id: string | null;
  run_name: string | null;
  created: number | null;
  aliases: string[];
  snapshots: string[];
  metrics: Record<string, number | null>;
  gates: GateRecord[];
}

export interface ModelDetail {
  name: string;
  aliases: Record<string, number>;
  versions: ModelVersionInfo[];
}

/** Body of `POST models/<name>/promote`: the options of `%promote`. */
export interface PromoteRequest {
  alias: string;
  version?: number;
  require?: string[];
  vs?: string;
  min_delta?: number;
  metric?: string;
  reference?: string;
  current?: string;
  max_drift_share?: number;
  dry_run?: boolean;
  reason?: string;
}

export interface PromoteAnswer {
  passed: boolean;
  moved: boolean;
  decision: string;
  headline: string;
  model: string;
  version: number | null;
  alias: string | null;
  previous: number | null;
  checks: GateCheck[];
  reports: string[];
}

export interface DriftReportInfo {
  run_id: string;
  run_name: string;
  report: string;
  reference: string | null;
  current: string | null;
  drifted: boolean | null;
  share_drifted: number | null;
  start_time: number | null;
}

export interface DriftList {
  experiment: string;
  reports: DriftReportInfo[];
}

export interface DriftReport {
  run_id: string;
  report: string;
  html: string;
}

/** `GET experiments`: the shown experiment, then the store's, most recently updated first. */
export interface ExperimentList {
  current: string;
  experiments: { name: string; last_update_time: number | null }[];
}

/** `GET runs/<id>/artifact?file=<path>`: one artifact's text, or why it is not shown. */
export interface ArtifactText {
  run_id: string;
  path: string;
  size: number | null;
  text: string | null;
  note: string | null;
}
