import React, { useState } from 'react';

import { IDriftReportInfo, getDrift, getDriftReport } from '../api';
import {
  ErrorRow,
  LoadState,
  Placeholder,
  Section,
  formatTime
} from '../components';
import { useApi, usePanel } from '../context';

export function DriftSection(): JSX.Element {
  const panel = usePanel();
  const state = useApi(getDrift);
  const [error, setError] = useState<string | null>(null);
  const reports = state.data?.reports ?? [];

  const open = (info: IDriftReportInfo) => {
    setError(null);
    getDriftReport(panel, info.run_id, info.report).then(
      report =>
        panel.openReport(
          `Drift: ${info.reference} → ${info.current}`,
          report.html
        ),
      (e: Error) => setError(e.message)
    );
  };

  return (
    <Section title="Drift" testId="mlops-drift">
      <LoadState state={state} />
      {error && (
        <p className="jp-MlopsPanel-error" role="alert">
          {error}
        </p>
      )}
      {state.data && reports.length === 0 && (
        <Placeholder>
          No drift reports in <code>{state.data.experiment}</code> yet — run{' '}
          <code>%drift REFERENCE CURRENT</code> inside a <code>%%track</code>{' '}
          cell.
        </Placeholder>
      )}
      {reports.length > 0 && (
        <table className="jp-MlopsTable">
          <thead>
            <tr>
              <th>report</th>
              <th>drifted</th>
              <th>run</th>
            </tr>
          </thead>
          <tbody>
            {reports.map(info =>
              info.error !== null ? (
                <ErrorRow
                  key={`${info.run_id}/${info.report}`}
                  label={`${info.run_name}: ${info.report}`}
                  error={info.error}
                  colSpan={3}
                />
              ) : (
                <tr
                  key={`${info.run_id}/${info.report}`}
                  data-testid="mlops-drift-row"
                >
                  <td>
                    <button
                      className="jp-MlopsLink"
                      title="Open the report in a tab"
                      onClick={() => open(info)}
                    >
                      {info.reference} → {info.current}
                    </button>
                  </td>
                  <td className={info.drifted ? 'jp-mod-fail' : 'jp-mod-pass'}>
                    {info.share_drifted === null
                      ? '–'
                      : `${Math.round(info.share_drifted * 100)}%${info.drifted ? ' (drift)' : ''}`}
                  </td>
                  <td title={formatTime(info.start_time)}>{info.run_name}</td>
                </tr>
              )
            )}
          </tbody>
        </table>
      )}
    </Section>
  );
}
