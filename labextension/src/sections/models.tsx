import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import React, { useState } from 'react';

import {
  Detail,
  ErrorRow,
  GateTable,
  LoadState,
  Placeholder,
  Section,
  formatTime,
  formatValue
} from '../components';
import {
  IModelDetail,
  IPromoteAnswer,
  IPromoteRequest,
  getModel,
  getModels,
  promoteModel
} from '../api';
import { useApi, usePanel } from '../context';

export function ModelsSection(): JSX.Element {
  const state = useApi(getModels);
  const [open, setOpen] = useState<string | null>(null);

  if (open !== null) {
    return (
      <Section title="Models" testId="mlops-models">
        <ModelView name={open} onClose={() => setOpen(null)} />
      </Section>
    );
  }
  const models = state.data?.models ?? [];
  return (
    <Section title="Models" testId="mlops-models">
      <LoadState state={state} />
      {state.data && models.length === 0 && (
        <Placeholder>
          No registered models yet — register one with{' '}
          <code>%register model --name NAME</code>.
        </Placeholder>
      )}
      {models.length > 0 && (
        <table className="jp-MlopsTable">
          <thead>
            <tr>
              <th>model</th>
              <th>latest</th>
              <th>aliases</th>
            </tr>
          </thead>
          <tbody>
            {models.map(model =>
              model.error !== null ? (
                <ErrorRow
                  key={model.name}
                  label={model.name}
                  error={model.error}
                  colSpan={3}
                />
              ) : (
                <tr key={model.name} data-testid="mlops-model-row">
                  <td>
                    <button
                      className="jp-MlopsLink"
                      title={`Versions, gates and Promote for ${model.name}`}
                      onClick={() => setOpen(model.name)}
                    >
                      {model.name}
                    </button>
                  </td>
                  <td>v{model.latest_version}</td>
                  <td>
                    <Aliases aliases={model.aliases} />
                  </td>
                </tr>
              )
            )}
          </tbody>
        </table>
      )}
    </Section>
  );
}

function Aliases(props: { aliases: Record<string, number> }): JSX.Element {
  return (
    <span data-testid="mlops-model-aliases">
      {Object.entries(props.aliases).map(([alias, version]) => (
        <span
          key={alias}
          className="jp-MlopsBadge"
          data-alias={alias}
          data-version={version}
        >
          {alias} → v{version}
        </span>
      ))}
    </span>
  );
}

function ModelView(props: { name: string; onClose: () => void }): JSX.Element {
  const [reloads, setReloads] = useState(0);
  const state = useApi(
    scope => getModel(scope, props.name),
    `${props.name}#${reloads}`
  );
  const detail = state.data;
  return (
    <Detail
      title={props.name}
      testId="mlops-model-detail"
      onClose={props.onClose}
    >
      <LoadState state={state} />
      {detail && (
        <>
          <div className="jp-MlopsToolbar">
            <span className="jp-MlopsMuted">aliases</span>
            <Aliases aliases={detail.aliases} />
          </div>
          <table className="jp-MlopsTable">
            <thead>
              <tr>
                <th>version</th>
                <th>run</th>
                <th>aliases</th>
                <th>last gate</th>
              </tr>
            </thead>
            <tbody>
              {detail.versions.map(v => {
                const last = v.gates[0];
                return (
                  <tr key={v.version} title={formatTime(v.created)}>
                    <td>v{v.version}</td>
                    <td
                      title={Object.entries(v.metrics)
                        .map(([k, x]) => `${k}=${formatValue(x)}`)
                        .join(', ')}
                    >
                      {v.run_name ?? '–'}
                    </td>
                    <td>{v.aliases.join(', ')}</td>
                    <td
                      className={
                        last
                          ? last.passed
                            ? 'jp-mod-pass'
                            : 'jp-mod-fail'
                          : ''
                      }
                    >
                      {last
                        ? `${last.decision}${last.alias ? ` → ${last.alias}` : ''}`
                        : '–'}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          <h4>Gate history</h4>
          <GateHistory detail={detail} />
          <PromoteForm detail={detail} onDone={() => setReloads(reloads + 1)} />
        </>
      )}
    </Detail>
  );
}

function GateHistory(props: { detail: IModelDetail }): JSX.Element {
  const decisions = props.detail.versions.flatMap(v =>
    v.gates.map(g => ({ ...g, version: v.version }))
  );
  decisions.sort((a, b) => (a.at < b.at ? 1 : -1));
  if (decisions.length === 0) {
    return (
      <Placeholder>
        No gate has run yet — use Promote below or <code>%promote</code>.
      </Placeholder>
    );
  }
  return (
    <ul className="jp-MlopsList" data-testid="mlops-gate-history">
      {decisions.map((d, i) => (
        <li
          key={i}
          className={d.passed ? 'jp-mod-pass' : 'jp-mod-fail'}
          title={d.checks
            .map(c => `${c.passed ? 'pass' : 'FAIL'} ${c.name}`)
            .join('\n')}
        >
          v{d.version} {d.alias ? `→ ${d.alias}` : ''}:{' '}
          <strong>{d.decision}</strong>{' '}
          <span className="jp-MlopsMuted">
            {d.at.slice(0, 16).replace('T', ' ')} {d.user}{' '}
            {d.reason ? `· ${d.reason}` : ''}
          </span>
        </li>
      ))}
    </ul>
  );
}

/** Ask before an alias moves (a dry run moves nothing, so it is not asked about). */
async function confirmMove(
  detail: IModelDetail,
  body: IPromoteRequest
): Promise<boolean> {
  if (body.dry_run) {
    return true;
  }
  const target = body.version ?? detail.versions[0]?.version;
  const now = detail.aliases[body.alias];
  const from =
    now === undefined ? 'It is not set yet.' : `It points at v${now} now.`;
  const result = await showDialog({
    title: `Move ${body.alias}?`,
    body:
      `Point ${detail.name}@${body.alias} at v${target} if every check of the gate passes. ` +
      `${from} The decision is recorded either way.`,
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Promote' })]
  });
  return result.button.accept;
}

function PromoteForm(props: {
  detail: IModelDetail;
  onDone: () => void;
}): JSX.Element {
  const panel = usePanel();
  const { detail } = props;
  const [version, setVersion] = useState(
    String(detail.versions[0]?.version ?? '')
  );
  const [alias, setAlias] = useState('champion');
  const [require, setRequire] = useState('');
  const [vs, setVs] = useState('');
  const [minDelta, setMinDelta] = useState('');
  const [reference, setReference] = useState('');
  const [current, setCurrent] = useState('');
  const [maxDrift, setMaxDrift] = useState('');
  const [dryRun, setDryRun] = useState(false);
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [answer, setAnswer] = useState<IPromoteAnswer | null>(null);

  const submit = (event: React.FormEvent) => {
    event.preventDefault();
    const body: IPromoteRequest = {
      alias: alias.trim(),
      version: version ? Number(version) : undefined,
      require: require
        .split('\n')
        .map(line => line.trim())
        .filter(line => line),
      vs: vs.trim() || undefined,
      min_delta: minDelta.trim() ? Number(minDelta) : undefined,
      reference: reference.trim() || undefined,
      current: current.trim() || undefined,
      max_drift_share: maxDrift.trim() ? Number(maxDrift) : undefined,
      dry_run: dryRun,
      reason: reason.trim() || undefined
    };
    setBusy(true);
    setAnswer(null);
    void confirmMove(detail, body)
      .then(confirmed =>
        !confirmed
          ? undefined
          : promoteModel(panel, detail.name, body).then(
              result => {
                setAnswer(result);
                props.onDone();
              },
              (e: Error) =>
                showErrorMessage(`Promote ${detail.name} failed`, e.message)
            )
      )
      .finally(() => setBusy(false));
  };

  return (
    <form
      className="jp-MlopsForm"
      data-testid="mlops-promote"
      onSubmit={submit}
    >
      <h4>Promote</h4>
      <label className="jp-MlopsField">
        version
        <select
          value={version}
          onChange={e => setVersion(e.target.value)}
          name="version"
        >
          {detail.versions.map(v => (
            <option key={v.version} value={v.version}>
              v{v.version}
            </option>
          ))}
        </select>
      </label>
      <label className="jp-MlopsField">
        to alias
        <input
          name="alias"
          value={alias}
          onChange={e => setAlias(e.target.value)}
          required
        />
      </label>
      <label className="jp-MlopsField jp-mod-wide">
        require (one check per line)
        <textarea
          name="require"
          rows={2}
          placeholder="metrics.val_acc >= 0.9"
          value={require}
          onChange={e => setRequire(e.target.value)}
        />
      </label>
      <label className="jp-MlopsField">
        vs alias
        <input
          name="vs"
          value={vs}
          placeholder="champion"
          onChange={e => setVs(e.target.value)}
        />
      </label>
      <label className="jp-MlopsField">
        min delta
        <input
          name="min_delta"
          type="number"
          step="any"
          value={minDelta}
          onChange={e => setMinDelta(e.target.value)}
        />
      </label>
      <label className="jp-MlopsField">
        reference
        <input
          name="reference"
          value={reference}
          placeholder="train@v1"
          onChange={e => setReference(e.target.value)}
        />
      </label>
      <label className="jp-MlopsField">
        current
        <input
          name="current"
          value={current}
          placeholder="live@v3"
          onChange={e => setCurrent(e.target.value)}
        />
      </label>
      <label className="jp-MlopsField">
        max drift share
        <input
          name="max_drift_share"
          type="number"
          step="any"
          min="0"
          max="1"
          value={maxDrift}
          onChange={e => setMaxDrift(e.target.value)}
        />
      </label>
      <label className="jp-MlopsField">
        reason
        <input
          name="reason"
          value={reason}
          onChange={e => setReason(e.target.value)}
        />
      </label>
      <label className="jp-MlopsCheck">
        <input
          type="checkbox"
          name="dry_run"
          checked={dryRun}
          onChange={e => setDryRun(e.target.checked)}
        />
        dry run
      </label>
      <button
        type="submit"
        className="jp-mod-styled jp-mod-accept jp-MlopsButton"
        disabled={busy}
      >
        {busy ? 'Running gate…' : 'Run gate and promote'}
      </button>
      {answer && (
        <div
          data-testid="mlops-gate-result"
          data-passed={answer.passed}
          data-moved={answer.moved}
        >
          <p
            className={
              answer.passed
                ? 'jp-MlopsVerdict jp-mod-pass'
                : 'jp-MlopsVerdict jp-mod-fail'
            }
          >
            {answer.headline}
          </p>
          <GateTable checks={answer.checks} />
        </div>
      )}
    </form>
  );
}
