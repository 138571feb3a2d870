import React, { useState } from 'react';

import {
  Detail,
  ErrorRow,
  LoadState,
  Placeholder,
  Section,
  formatBytes,
  formatValue
} from '../components';
import { IDiffPayload, getSnapshot, getSnapshots } from '../api';
import { useApi } from '../context';

export function SnapshotsSection(): JSX.Element {
  const state = useApi(getSnapshots);
  const [open, setOpen] = useState<{ name: string; version: number } | null>(
    null
  );

  if (open !== null) {
    return (
      <Section title="Snapshots" testId="mlops-snapshots">
        <SnapshotView {...open} onClose={() => setOpen(null)} />
      </Section>
    );
  }
  const names = state.data?.names ?? [];
  return (
    <Section title="Snapshots" testId="mlops-snapshots">
      <LoadState state={state} />
      {state.data && names.length === 0 && (
        <Placeholder>
          No snapshots yet — save one with <code>%snapshot df --name NAME</code>
          .
        </Placeholder>
      )}
      {names.length > 0 && (
        <div className="jp-MlopsScroll">
          <table className="jp-MlopsTable">
            <thead>
              <tr>
                <th>name</th>
                <th>version</th>
                <th>rows</th>
                <th>size</th>
                <th>created</th>
              </tr>
            </thead>
            <tbody>
              {names.map(({ name, versions }) => {
                const latest = versions[versions.length - 1];
                return (
                  <React.Fragment key={name}>
                    <tr data-testid="mlops-snapshot-row">
                      <td>
                        <button
                          className="jp-MlopsLink"
                          title={`Schema and versions of ${name}`}
                          onClick={() =>
                            setOpen({ name, version: latest.version })
                          }
                        >
                          {name}
                        </button>
                      </td>
                      <td>
                        v{latest.version}
                        {versions.length > 1 ? ` (${versions.length})` : ''}
                      </td>
                      <td>{formatValue(latest.rows)}</td>
                      <td>{formatBytes(latest.bytes)}</td>
                      <td title={latest.notebook}>
                        {(latest.created ?? '').slice(0, 16)}
                      </td>
                    </tr>
                    {versions
                      .filter(v => v.error !== null)
                      .map(v => (
                        <ErrorRow
                          key={v.version}
                          label={v.ref}
                          error={v.error!}
                          colSpan={5}
                        />
                      ))}
                  </React.Fragment>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </Section>
  );
}

function SnapshotView(props: {
  name: string;
  version: number;
  onClose: () => void;
}): JSX.Element {
  const [version, setVersion] = useState(props.version);
  const [against, setAgainst] = useState<number | ''>('');
  const state = useApi(
    scope => getSnapshot(scope, props.name, { version }),
    `${props.name}@${version}`
  );
  // A diff always runs from the older version to the newer one, whichever is shown.
  const compared = useApi(
    against === ''
      ? null
      : scope =>
          getSnapshot(scope, props.name, {
            version: Math.max(version, against),
            diff: Math.min(version, against)
          }),
    `${props.name}@${version}-${against}`
  );
  const detail = state.data;
  const versions = detail?.versions ?? [];
  return (
    <Detail
      title={`${props.name}@v${version}`}
      testId="mlops-snapshot-detail"
      onClose={props.onClose}
    >
      <LoadState state={state} />
      {detail && (
        <>
          <table className="jp-MlopsTable">
            <thead>
              <tr>
                <th>version</th>
                <th>rows</th>
                <th>cols</th>
                <th>size</th>
                <th>message</th>
                <th>by</th>
              </tr>
            </thead>
            <tbody>
              {versions.map(v =>
                v.error !== null ? (
                  <ErrorRow
                    key={v.version}
                    label={`v${v.version}`}
                    error={v.error}
                    colSpan={6}
                  />
                ) : (
                  <tr
                    key={v.version}
                    className={v.version === version ? 'jp-mod-selected' : ''}
                    onClick={() => {
                      setVersion(v.version);
                      setAgainst('');
                    }}
                    title={`${v.ref} · ${v.id} · ${v.created ?? ''}`}
                  >
                    <td>v{v.version}</td>
                    <td>{formatValue(v.rows)}</td>
                    <td>{formatValue(v.columns)}</td>
                    <td>{formatBytes(v.bytes)}</td>
                    <td>{v.message}</td>
                    <td title={v.notebook}>{v.notebook.split('/').pop()}</td>
                  </tr>
                )
              )}
            </tbody>
          </table>
          <h4>Schema and stats of v{detail.version}</h4>
          {detail.schema.length > 0 ? (
            <div className="jp-MlopsScroll">
              <table
                className="jp-MlopsTable"
                data-testid="mlops-snapshot-schema"
              >
                <thead>
                  <tr>
                    <th>column</th>
                    <th>type</th>
                    <th>stats</th>
                  </tr>
                </thead>
                <tbody>
                  {detail.schema
                    .filter(c => !c.index)
                    .map(c => (
                      <tr key={c.name}>
                        <td>{c.name}</td>
                        <td>{c.type}</td>
                        <td className="jp-MlopsMuted">
                          {Object.entries(c.stats)
                            .map(([k, v]) => `${k} ${formatValue(v)}`)
                            .join(' · ')}
                        </td>
                      </tr>
                    ))}
                </tbody>
              </table>
            </div>
          ) : (
            <Placeholder>A file or folder snapshot: no columns.</Placeholder>
          )}
          {versions.length > 1 && (
            <label className="jp-MlopsField">
              Compare v{detail.version} with{' '}
              <select
                data-testid="mlops-snapshot-diff-select"
                value={against}
                onChange={e =>
                  setAgainst(
                    e.target.value === '' ? '' : Number(e.target.value)
                  )
                }
              >
                <option value="">—</option>
                {versions
                  .filter(v => v.version !== version)
                  .map(v => (
                    <option key={v.version} value={v.version}>
                      v{v.version}
                    </option>
                  ))}
              </select>
            </label>
          )}
          {against !== '' && <LoadState state={compared} />}
          {against !== '' && compared.data?.diff && (
            <DiffView diff={compared.data.diff} />
          )}
        </>
      )}
    </Detail>
  );
}

const CHANGE_CLASS: Record<string, string> = {
  added: 'jp-mod-pass',
  removed: 'jp-mod-fail',
  retyped: 'jp-mod-warn',
  changed: 'jp-mod-warn'
};

/** What changed from the older version to the newer: rows, then columns, then stats. */
function DiffView(props: { diff: IDiffPayload }): JSX.Element {
  const { diff } = props;
  const noun = diff.rows === null ? 'files' : 'columns';
  return (
    <div className="jp-MlopsDiff" data-testid="mlops-snapshot-diff">
      <p>
        <strong>
          {diff.a} → {diff.b}
        </strong>
      </p>
      {diff.identical ? (
        <p data-testid="mlops-diff-identical">identical content</p>
      ) : (
        <>
          {diff.rows && <p data-testid="mlops-diff-rows">rows {diff.rows}</p>}
          {diff.changes.length > 0 && (
            <div className="jp-MlopsScroll">
              <table className="jp-MlopsTable" data-testid="mlops-diff-changes">
                <tbody>
                  {diff.changes.map(c => (
                    <tr key={`${c.change}/${c.column}`} data-change={c.change}>
                      <td className={CHANGE_CLASS[c.change] ?? ''}>
                        {c.change}
                      </td>
                      <td title={c.column}>{c.column}</td>
                      <td title={c.detail}>{c.detail}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <p className="jp-MlopsMuted" data-testid="mlops-diff-unchanged">
            {diff.unchanged} {noun} unchanged
          </p>
          {diff.stat_shifts.length > 0 && (
            <div className="jp-MlopsScroll">
              <table className="jp-MlopsTable" data-testid="mlops-diff-stats">
                <thead>
                  <tr>
                    <th>column</th>
                    <th>stat</th>
                    <th>before</th>
                    <th>after</th>
                  </tr>
                </thead>
                <tbody>
                  {diff.stat_shifts.map(shift => (
                    <tr key={`${shift.column}.${shift.stat}`}>
                      <td>{shift.column}</td>
                      <td>{shift.stat}</td>
                      <td>{formatValue(shift.before)}</td>
                      <td>{formatValue(shift.after)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </div>
  );
}
