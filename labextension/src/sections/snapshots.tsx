import React, { useState } from 'react';

import {
  Detail,
  LoadState,
  Placeholder,
  Section,
  formatBytes,
  formatValue
} from '../components';
import { route, useApi, usePanel } from '../context';
import { SnapshotDetail, SnapshotList } from '../types';

export function SnapshotsSection(): JSX.Element {
  const panel = usePanel();
  const state = useApi<SnapshotList>(route(panel, 'snapshots'));
  const [open, setOpen] = useState<{ name: string; version: number } | null>(null);

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
          No snapshots yet — save one with <code>%snapshot df --name NAME</code>.
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
                  <tr key={name} data-testid="mlops-snapshot-row">
                    <td>
                      <button
                        className="jp-MlopsLink"
                        title={`Schema and versions of ${name}`}
                        onClick={() => setOpen({ name, version: latest.version })}
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
                    <td title={latest.notebook}>{(latest.created ?? '').slice(0, 16)}</td>
                  </tr>
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
  const panel = usePanel();
  const [version, setVersion] = useState(props.version);
  const [against, setAgainst] = useState<number | ''>('');
  const state = useApi<SnapshotDetail>(
    route(panel, `snapshots/${encodeURIComponent(props.name)}`, {
      version,
      diff: against === '' ? undefined : against
    })
  );
  const detail = state.data;
  const versions = detail?.versions ?? [];
  return (
    <Detail title={`${props.name}@v${version}`} testId="mlops-snapshot-detail" onClose={props.onClose}>
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
              {versions.map(v => (
                <tr
                  key={v.version}
                  className={v.version === version ? 'jp-mod-selected' : ''}
                  onClick={() => setVersion(v.version)}
                  title={`${v.ref} · ${v.id} · ${v.created ?? ''}`}
                >
                  <td>v{v.version}</td>
                  <td>{formatValue(v.rows)}</td>
                  <td>{formatValue(v.columns)}</td>
                  <td>{formatBytes(v.bytes)}</td>
                  <td>{v.message}</td>
                  <td title={v.notebook}>{v.notebook.split('/').pop()}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h4>Schema and stats of v{detail.version}</h4>
          {detail.schema.length > 0 ? (
            <div className="jp-MlopsScroll">
              <table className="jp-MlopsTable" data-testid="mlops-snapshot-schema">
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
              Diff v{detail.version} against{' '}
              <select
                data-testid="mlops-snapshot-diff-select"
                value={against}
                onChange={e => setAgainst(e.target.value === '' ? '' : Number(e.target.value))}
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
          {detail.diff && (
            <pre className="jp-MlopsCode" data-testid="mlops-snapshot-diff">
              {detail.diff.text}
            </pre>
          )}
        </>
      )}
    </Detail>
  );
}
