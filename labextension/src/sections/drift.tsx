import React from 'react';

import { Placeholder, Section } from '../components';

export function DriftSection(): JSX.Element {
  return (
    <Section title="Drift" testId="mlops-drift">
      <Placeholder>
        No drift reports yet — <code>%drift reference current</code>.
      </Placeholder>
    </Section>
  );
}
