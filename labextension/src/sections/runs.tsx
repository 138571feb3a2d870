import React from 'react';

import { Placeholder, Section } from '../components';

export function RunsSection(): JSX.Element {
  return (
    <Section title="Runs" testId="mlops-runs">
      <Placeholder>
        No runs yet — run a <code>%%track</code> cell.
      </Placeholder>
    </Section>
  );
}
