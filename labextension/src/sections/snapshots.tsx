import React from 'react';

import { Placeholder, Section } from '../components';

export function SnapshotsSection(): JSX.Element {
  return (
    <Section title="Snapshots" testId="mlops-snapshots">
      <Placeholder>
        No snapshots yet — <code>%snapshot df --name NAME</code>.
      </Placeholder>
    </Section>
  );
}
