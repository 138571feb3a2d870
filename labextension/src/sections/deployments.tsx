import { Dialog, showDialog } from '@jupyterlab/apputils';
import React, { useEffect, useState } from 'react';

import {
  IDeploymentInfo,
  IMonitorVerdict,
  IScope,
  getDeployments,
  getMonitor,
  stopDeployment
} from '../api';
import { LoadState, Placeholder, Section, formatTime } from '../components';
import { useApi, usePanel } from '../context';

/** How often the counters of live endpoints are read again while the section is shown. */
const POLL_MS = 3000;

/** The endpoints, and each one's latest `%monitor` verdict (null: never monitored). */
interface IDeploymentsView {
  deployments: IDeploymentInfo[];
  verdicts: Record<string, IMonitorVerdict | null>;
}

async function loadDeployments(scope: IScope): Promise<IDeploymentsView> {
  const { deployments } = await getDeployments(scope);
  const verdicts = await Promise.all(
    deployments.map(d => getMonitor(scope, d.name).catch(() => null))
  );
  return {
    deployments,
    verdicts: Object.fromEntries(
      deployments.map((d, i) => [d.name, verdicts[i]])
    )
  };
}

export function DeploymentsSection(): JSX.Element {
  const panel = usePanel();
  const [tick, setTick] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const [stopping, setStopping] = useState<string | null>(null);
  const state = useApi(loadDeployments, String(tick));
  const endpoints = state.data?.deployments ?? [];
  const verdicts = state.data?.verdicts ?? {};
  const monitored = Object.values(verdicts).some(v => v !== null);
  const anyAlive = endpoints.some(d => d.alive);

  useEffect(() => {
    if (!anyAlive) {
      return;
    }
    const timer = window.setTimeout(() => setTick(t => t + 1), POLL_MS);
    return () => window.clearTimeout(timer);
  }, [anyAlive, state.status, tick]);

  const stop = async (endpoint: IDeploymentInfo) => {
    const result = await showDialog({
      title: `Stop ${endpoint.name}?`,
      body:
        `Stop the endpoint at ${endpoint.url} (pid ${endpoint.pid}) as %serve stop does: ` +
        'requests in flight finish and its inference log is flushed.',
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Stop' })]
    });
    if (!result.button.accept) {
      return;
    }
    setError(null);
    setStopping(endpoint.name);
    try {
      await stopDeployment(panel, endpoint.name);
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setStopping(null);
      setTick(t => t + 1);
    }
  };

  return (
    <Section title="Deployments" testId="mlops-deployments">
      <LoadState state={state} />
      {error && (
        <p className="jp-MlopsPanel-error" role="alert">
          {error}
        </p>
      )}
      {state.data && endpoints.length === 0 && (
        <Placeholder>
          No endpoints — start one with <code>%serve NAME@ALIAS</code>.
        </Placeholder>
      )}
      {endpoints.length > 0 && (
        <table className="jp-MlopsTable">
          <thead>
            <tr>
              <th>endpoint</th>
              <th>version</th>
              <th title="requests answered">requests</th>
              <th title="95th percentile latency of recent requests">p95</th>
              <th title="answers with status 400 or more">errors</th>
              {monitored && (
                <th title="the latest %monitor verdict">monitor</th>
              )}
              <th />
            </tr>
          </thead>
          <tbody>
            {endpoints.map(d => (
              <tr
                key={d.name}
                data-testid="mlops-deployment-row"
                data-name={d.name}
                data-alive={d.alive ? 'true' : 'false'}
              >
                <td
                  title={`${d.url} · pid ${d.pid} · started ${formatTime(d.started * 1000)}`}
                >
                  <span
                    className={d.alive ? 'jp-mod-pass' : 'jp-mod-fail'}
                    aria-label={d.alive ? 'alive' : 'not running'}
                  >
                    {d.alive ? '●' : '○'}
                  </span>{' '}
                  {d.name}
                </td>
                <td data-testid="mlops-deployment-version">
                  {d.version === null ? '–' : `v${d.version}`}
                </td>
                <td data-testid="mlops-deployment-requests">{d.requests}</td>
                <td>{d.p95_ms === null ? '–' : `${d.p95_ms.toFixed(1)} ms`}</td>
                <td className={d.errors > 0 ? 'jp-mod-fail' : undefined}>
                  {d.errors}
                </td>
                {monitored && (
                  <MonitorCell verdict={verdicts[d.name] ?? null} />
                )}
                <td>
                  <button
                    className="jp-MlopsLink"
                    data-testid="mlops-deployment-stop"
                    disabled={stopping !== null}
                    title={
                      d.alive ? 'Stop this endpoint' : 'Clear its stale record'
                    }
                    onClick={() => void stop(d)}
                  >
                    {stopping === d.name ? 'stopping…' : 'stop'}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  );
}

function MonitorCell(props: { verdict: IMonitorVerdict | null }): JSX.Element {
  const { verdict } = props;
  if (verdict === null) {
    return <td data-testid="mlops-deployment-monitor">–</td>;
  }
  return (
    <td
      className={verdict.passed ? 'jp-mod-pass' : 'jp-mod-fail'}
      data-testid="mlops-deployment-monitor"
      title={verdict.headline}
    >
      {verdict.passed ? 'passed' : 'failed'}
    </td>
  );
}
