import React, { useState } from 'react';

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
