import React, { useState } from 'react';

import { Loaded } from './context';

export interface ISectionProps {
  title: string;
  testId: string;
  /** Start folded; sections are open by default. */
  collapsed?: boolean;
  children?: React.ReactNode;
}

/** A titled block of the panel whose body folds away when its heading is clicked. */
export function Section(props: ISectionProps): JSX.Element {
  const [open, setOpen] = useState(!props.collapsed);
  return (
    <section className="jp-MlopsSection" data-testid={props.testId}>
      <h3 className="jp-MlopsSection-heading">
        <button
          className="jp-MlopsSection-toggle"
          aria-expanded={open}
          onClick={() => setOpen(!open)}
        >
          <span
            className={`jp-MlopsSection-caret${open ? ' jp-mod-open' : ''}`}
            aria-hidden="true"
          />
          {props.title}
        </button>
      </h3>
      {open && <div className="jp-MlopsSection-body">{props.children}</div>}
    </section>
  );
}

/** Grey text shown where a section has nothing to list yet. */
export function Placeholder(props: { children: React.ReactNode }): JSX.Element {
  return <p className="jp-MlopsPlaceholder">{props.children}</p>;
}

/** The loading line or the error of a request; nothing once it is ready. */
export function LoadState<T>(props: { state: Loaded<T> }): JSX.Element | null {
  const { state } = props;
  if (state.status === 'error') {
    return (
      <p className="jp-MlopsPanel-error" role="alert">
        {state.message}
      </p>
    );
  }
  if (state.status === 'loading' && state.data === undefined) {
    return <p className="jp-MlopsPanel-status">Loading…</p>;
  }
  return null;
}

/**
 * A damaged record as a table row of its own: what it is and what is wrong with it (the
 * server's one-line `error`). The rest of the table stands.
 */
export function ErrorRow(props: {
  label: React.ReactNode;
  error: string;
  colSpan: number;
}): JSX.Element {
  return (
    <tr className="jp-MlopsRowError" data-testid="mlops-row-error">
      <td colSpan={props.colSpan}>
        <span className="jp-MlopsRowError-label">{props.label}</span>{' '}
        <span role="alert">{props.error}</span>
      </td>
    </tr>
  );
}

/** A sub-view with a back link (run details, a model, a snapshot). */
export function Detail(props: {
  title: string;
  testId: string;
  onClose: () => void;
  children: React.ReactNode;
}): JSX.Element {
  return (
    <div className="jp-MlopsDetail" data-testid={props.testId}>
      <div className="jp-MlopsDetail-header">
        <button className="jp-MlopsLink" onClick={props.onClose}>
          ← back
        </button>
        <strong title={props.title}>{props.title}</strong>
      </div>
      {props.children}
    </div>
  );
}

/** Key/value pairs as a compact two-column grid. */
export function KeyValues(props: {
  values: Record<string, unknown>;
  empty?: string;
}): JSX.Element {
  const entries = Object.entries(props.values);
  if (entries.length === 0) {
    return <Placeholder>{props.empty ?? 'none'}</Placeholder>;
  }
  return (
    <dl className="jp-MlopsKeyValues">
      {entries.map(([key, value]) => (
        <React.Fragment key={key}>
          <dt title={key}>{key}</dt>
          <dd title={formatValue(value)}>{formatValue(value)}</dd>
        </React.Fragment>
      ))}
    </dl>
  );
}

export function formatValue(value: unknown): string {
  if (value === null || value === undefined) {
    return '–';
  }
  if (typeof value === 'number') {
    return Number.isInteger(value) ? String(value) : value.toPrecision(4);
  }
  return String(value);
}

export function formatTime(ms: number | null): string {
  if (ms === null) {
    return '–';
  }
  const date = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}`
  );
}

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** The pass/fail table of a gate. */
export function GateTable(props: {
  checks: {
    name: string;
    value: unknown;
    threshold: string;
    passed: boolean;
    detail: string;
  }[];
  testId?: string;
}): JSX.Element {
  return (
    <table className="jp-MlopsTable" data-testid={props.testId}>
      <thead>
        <tr>
          <th />
          <th>check</th>
          <th>value</th>
          <th>need</th>
        </tr>
      </thead>
      <tbody>
        {props.checks.map((check, i) => (
          <tr key={i} className={check.passed ? 'jp-mod-pass' : 'jp-mod-fail'}>
            <td>{check.passed ? 'pass' : 'FAIL'}</td>
            <td title={check.detail || check.name}>{check.name}</td>
            <td>{formatValue(check.value)}</td>
            <td>{check.threshold}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
