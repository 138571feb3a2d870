import React from 'react';

import { Placeholder, Section } from '../components';

export function ModelsSection(): JSX.Element {
  return (
    <Section title="Models" testId="mlops-models">
      <Placeholder>
        No registered models yet — <code>%register model --name NAME</code>.
      </Placeholder>
    </Section>
  );
}
